// Realistic samples of the notifications the platform sends, for `tenant-relay send-test`: what a
// tenant's recipients will see, multipart text and HTML like the real ones.
export const SAMPLE_KINDS = ['password-reset', 'reminder', 'form-submission'] as const;
export type SampleKind = (typeof SAMPLE_KINDS)[number];

export interface Sample {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
}

export function sample(kind: SampleKind, tenant: string): Sample {
  const code = String(100_000 + Math.floor(Math.random() * 900_000));
  switch (kind) {
    case 'password-reset':
      return {
        subject: 'Reset your password',
        text: `Someone asked to reset the password of your ${tenant} account.\n\nYour code is ${code}. It expires in 15 minutes.\n\nIf this was not you, ignore this message.\n`,
        html: `<p>Someone asked to reset the password of your ${tenant} account.</p><p>Your code is <b>${code}</b>. It expires in 15 minutes.</p><p>If this was not you, ignore this message.</p>`,
      };
    case 'reminder':
      return {
        subject: 'Reminder: your appointment tomorrow at 09:00',
        text: `This is a reminder from ${tenant}: your appointment is tomorrow at 09:00.\n\nReply to this message to reschedule.\n`,
        html: `<p>This is a reminder from ${tenant}: your appointment is tomorrow at <b>09:00</b>.</p><p>Reply to this message to reschedule.</p>`,
      };
    case 'form-submission':
      return {
        subject: 'New form submission: Contact us',
        text: 'A visitor submitted the "Contact us" form.\n\nName: Ada Example\nEmail: ada@example.com\nMessage: Please call me back about the quote.\n',
        html: '<p>A visitor submitted the "Contact us" form.</p><table><tr><td>Name</td><td>Ada Example</td></tr><tr><td>Email</td><td>ada@example.com</td></tr><tr><td>Message</td><td>Please call me back about the quote.</td></tr></table>',
      };
  }
}

// Every SMTP reply the relay itself composes, declared once, each with a stable id that logs, metrics,
// the README's table and the tests name it by. 4xx means "try again later", 5xx "do not retry"; each
// carries an RFC 3463 enhanced status code. The SMTP protocol's own refusals (out of order, bad syntax,
// limits) are here too, said by inbound/smtp/session.ts.

export interface SmtpReply {
  /** Stable, kebab-case: what logs and the refusal metric carry, and what the README lists. */
  readonly id: ReplyId;
  readonly code: number;
  /** RFC 3463 enhanced status code, e.g. "5.7.1". */
  readonly enhanced: string;
  readonly text: string;
}

export function formatReply(r: Pick<SmtpReply, 'code' | 'enhanced' | 'text'>): string {
  return `${r.code} ${r.enhanced} ${r.text}`;
}

/** What an upstream itself answered for a recipient: sanitised, bounded, with the queue id it named. */
export interface UpstreamReply {
  readonly code: number;
  /** RFC 3463, when the upstream gave one. */
  readonly enhanced?: string;
  readonly text: string;
  /** The upstream's own id for the message ("queued as 4Xk2..."), when its 250 named one. */
  readonly queueId?: string;
}

/** An upstream's own reply as one line (it may have given no enhanced code). */
export function formatUpstreamReply(r: UpstreamReply): string {
  return [r.code, r.enhanced, r.text].filter((part) => part !== undefined && part !== '').join(' ');
}

const reply = <I extends string>(id: I, code: number, enhanced: string, text: string) => Object.freeze({ id, code, enhanced, text });

export const Replies = {
  // Session and policy
  authRequired: reply('auth-required', 530, '5.7.0', 'Authentication required: this client may not send without AUTH'),
  authFailed: reply('auth-failed', 535, '5.7.8', 'Authentication credentials invalid'),
  badSenderAddress: reply('bad-sender-address', 501, '5.1.7', 'Sender address must be a plain mailbox@domain'),
  badRecipientAddress: reply('bad-recipient-address', 501, '5.1.3', 'Recipient address must be a plain mailbox@domain'),
  senderTenantConflict: (authTenant: string, senderTenant: string) =>
    reply('sender-tenant-conflict', 553, '5.7.1', `Sender belongs to tenant ${senderTenant}, but you authenticated as tenant ${authTenant}`),
  messageTooBig: (limit: number) => reply('message-too-big', 552, '5.3.4', `Message exceeds the maximum size of ${limit} bytes`),
  mailLoop: (max: number) => reply('mail-loop', 554, '5.4.0', `Mail loop detected: more than ${max} Received headers`),
  severalFromHeaders: (count: number) => reply('several-from-headers', 550, '5.6.0', `Message has ${count} From headers; exactly one is allowed`),
  tooManyFromAddresses: (count: number, max: number) => reply('too-many-from-addresses', 550, '5.6.0', `The From header names ${count} addresses; at most ${max} are allowed`),
  tooManySenderAddresses: (max: number) => reply('too-many-sender-addresses', 550, '5.6.0', `The Sender and Resent- headers name more than ${max} addresses; at most ${max} are allowed`),
  dkimFailedTemporary: reply('dkim-failed-temporary', 451, '4.7.5', 'The message could not be DKIM-signed; please try again later'),
  dkimFailedPermanent: reply('dkim-failed-permanent', 554, '5.7.5', 'The message cannot be DKIM-signed (it needs exactly one valid From header)'),
  bareLineEndings: reply('bare-line-endings', 550, '5.5.2', 'Message contains a bare CR or LF, or a NUL: lines must end in CRLF (SMTP smuggling protection)'),
  sourceRoute: reply('source-route', 501, '5.1.3', 'Source routes (<@host:user@domain>) are not accepted'),
  improperPipelining: reply('improper-pipelining', 554, '5.5.0', 'Improper pipelining: message content sent before the 354 reply to DATA; closing'),
  // RFC 5321 4.5.3.1.4: 512 octets for a command line, CRLF included; 4.2.4 names 500 for it.
  lineTooLong: reply('line-too-long', 500, '5.5.2', 'Line too long: a command line may have at most 512 octets'),
  tooManyAuthFailures: reply('too-many-auth-failures', 421, '4.7.0', 'Too many authentication failures; closing the connection'),
  tooManyConnectionsFromIp: reply('too-many-connections-from-ip', 421, '4.7.0', 'Too many connections from your address; please try again later'),
  tooManyConnections: reply('too-many-connections', 421, '4.3.2', 'Too many connections; please try again in a moment'),
  tooSlow: reply('too-slow', 421, '4.4.2', 'Session too slow: the deadline passed; closing the connection'),
  idleTimeout: reply('idle-timeout', 421, '4.4.2', 'Idle too long; closing the connection'),
  // The SMTP protocol's own refusals (RFC 5321 4.2.4, 4.3.2; RFC 4954 for AUTH).
  commandUnrecognized: reply('command-unrecognized', 500, '5.5.2', 'Command not recognized'),
  tooManyUnrecognizedCommands: reply('too-many-unrecognized-commands', 421, '4.7.0', 'Too many unrecognized commands; closing the connection'),
  httpRequest: reply('http-request', 421, '4.7.0', 'This is an SMTP server, not a web server; closing the connection'),
  // An early talker (a spam engine that does not wait for the greeting), as Postfix's postscreen calls it.
  talkedTooSoon: reply('talked-too-soon', 421, '4.7.0', 'You talk too soon: wait for the greeting; closing the connection'),
  heloFirst: reply('helo-first', 503, '5.5.1', 'Send EHLO or HELO first'),
  heloSyntax: reply('helo-syntax', 501, '5.5.4', 'Syntax: EHLO hostname'),
  nestedMail: reply('nested-mail', 503, '5.5.1', 'A transaction is already open: send RSET first'),
  needMail: reply('need-mail', 503, '5.5.1', 'Send MAIL FROM first'),
  needRcpt: reply('need-rcpt', 503, '5.5.1', 'Send RCPT TO first: no valid recipients'),
  badParameter: (detail: string) => reply('bad-parameter', 501, '5.5.4', detail),
  tooManyRecipients: (max: number) => reply('too-many-recipients', 452, '4.5.3', `Too many recipients: at most ${max} a message`),
  authNotOffered: reply('auth-not-offered', 503, '5.5.1', 'AUTH is not offered on this connection'),
  // RFC 4954 6: a password waits for TLS on a listener that offers STARTTLS.
  authNeedsTls: reply('auth-needs-tls', 538, '5.7.11', 'Encryption required: send STARTTLS first'),
  authTwice: reply('auth-twice', 503, '5.5.1', 'Already authenticated; no identity changes permitted'),
  authMechanism: reply('auth-mechanism', 504, '5.5.4', 'Unrecognized authentication type: PLAIN and LOGIN are offered'),
  authSyntax: reply('auth-syntax', 501, '5.5.2', 'Syntax: AUTH PLAIN [initial-response] or AUTH LOGIN [username], base64'),
  authAborted: reply('auth-aborted', 501, '5.0.0', 'Authentication aborted'),
  startTlsSyntax: reply('starttls-syntax', 501, '5.5.4', 'Syntax: STARTTLS, without parameters'),
  tlsActive: reply('tls-active', 503, '5.5.1', 'TLS is already active'),
  vrfySyntax: reply('vrfy-syntax', 501, '5.5.4', 'Syntax: VRFY address'),
  senderNotOfTenant: (sender: string, tenant: string) =>
    reply('sender-not-of-tenant', 553, '5.7.1', `Sender ${sender} is not an address of tenant ${tenant}, which you authenticated as`),
  headerFromNotOfTenant: (tenant: string) => reply('header-from-not-of-tenant', 553, '5.7.1', `The From header is not an address of tenant ${tenant}, which this message is sent as`),
  // Another tenant is not named: a client learns nothing of who else sends through the relay.
  headerFromOfOtherTenant: (tenant: string) => reply('header-from-of-other-tenant', 553, '5.7.1', `The From header is an address of another tenant; this message is sent as tenant ${tenant}`),
  senderHeaderOfOtherTenant: (header: 'Sender' | 'Resent-From' | 'Resent-Sender', tenant: string) =>
    reply('sender-header-of-other-tenant', 553, '5.7.1', `The ${header} header is an address of another tenant; this message is sent as tenant ${tenant}`),
  tenantRateExceeded: (tenant: string, waitSeconds: number) =>
    reply('tenant-rate-exceeded', 451, '4.7.1', `Tenant ${tenant} is over its sending rate; please try again in ${waitSeconds} seconds`),
  insufficientStorage: reply('insufficient-storage', 452, '4.3.1', 'Insufficient system storage; please try again later'),
  // Only the tenant whose waiting mail fills its share hears it.
  tenantSpoolFull: (tenant: string) => reply('tenant-spool-full', 452, '4.3.1', `Tenant ${tenant} has too much mail waiting to be delivered; please try again later`),
  headerTooLarge: reply('header-too-large', 552, '5.3.4', 'Message header section is larger than 1 MiB'),
  clientAborted: reply('client-aborted', 451, '4.3.0', 'Message data was not received completely; nothing was sent'),
  localError: reply('local-error', 451, '4.3.0', 'Local error in processing; please try again later'),
  // A fault of the relay's own in the middle of a session: its state is not to be trusted, so it ends.
  localErrorClosing: reply('local-error-closing', 421, '4.3.0', 'Local error in processing; closing the connection, please try again later'),
  // Never guessed: without the tenant's record, its mail could leave through the wrong upstream.
  tenantLookupUnavailable: reply('tenant-lookup-unavailable', 451, '4.3.0', 'Tenant settings are unavailable right now; please try again later'),
  // A client trying sender after sender: the platform's tenant API is not a directory to walk.
  tenantLookupsExceeded: reply('tenant-lookups-exceeded', 451, '4.7.1', 'Too many senders this relay had to look up; please try again later'),
  shuttingDown: reply('shutting-down', 421, '4.3.2', 'Service shutting down; please try again later'),
  // Queue mode: never sent through another upstream under the platform's identity; bounced at the end of its lifetime.
  // Queue mode, what a held message's record says (no client hears it: the message was accepted).
  heldByLimit: (reason: string) => reply('held-by-limit', 451, '4.7.1', `Held: ${reason}; it goes when the limit allows`),
  // A recipient whose address is suppressed for the tenant (its mailbox refused mail for good, or by
  // hand): refused at RCPT (suppression.action: refuse), or skipped and recorded (report).
  recipientSuppressed: (reason: string) => reply('recipient-suppressed', 550, '5.1.1', `Recipient address is suppressed for this sender (${reason}); not sent`),
  // What a provider's webhook told of a recipient after the upstream's 250 (a delivery event's reply).
  providerDelivered: (provider: string, said: string) => reply('provider-delivered', 250, '2.0.0', `${provider} confirms delivery (${said})`),
  providerBounced: (provider: string, said: string) => reply('provider-bounced', 550, '5.0.0', `${provider} reports a bounce (${said})`),
  providerComplained: (provider: string, said: string) => reply('provider-complained', 550, '5.7.1', `${provider} reports a complaint from the recipient (${said})`),
  // Pass-through, action report: every recipient suppressed; the message is taken, nothing sent, each reported.
  allSuppressed: reply('all-suppressed', 250, '2.0.0', 'Ok: every recipient is suppressed for this sender; nothing was sent'),
  // The bounce domain's listener: mail for an address that is not a return path the relay made.
  bounceAddressUnknown: reply('bounce-address-unknown', 550, '5.1.1', 'No such bounce address here'),
  // What a message a person acted on records (the mail console, `tenant-relay queue`).
  heldByHand: (by: string) => reply('held-by-hand', 451, '4.3.0', `Held by hand (${by}); it goes when released`),
  deletedByHand: (by: string) => reply('deleted-by-hand', 550, '5.0.0', `Deleted from the queue by hand (${by}); not delivered`),
  tenantGone: (tenant: string) => reply('tenant-gone', 451, '4.3.0', `Tenant ${tenant} is not known now (its record is gone); the message is held until it is back`),

  queued: (id: string) => reply('queued', 250, '2.0.0', `Ok: queued as ${id}`),

  // Outcomes of forwarding (pass-through: what the client hears; queue: what each recipient's state records)
  delivered: (upstream: string) => reply('delivered', 250, '2.0.0', `Ok: delivered via ${upstream}`),
  upstreamUnreachable: (upstream: string) => reply('upstream-unreachable', 451, '4.4.1', `Upstream ${upstream} is unreachable; please try again later`),
  upstreamTimeout: (upstream: string) => reply('upstream-timeout', 451, '4.4.2', `Upstream ${upstream} did not answer in time; please try again later`),
  upstreamConnectionLost: (upstream: string) =>
    reply('upstream-connection-lost', 451, '4.4.2', `Connection to upstream ${upstream} was lost; please try again later`),
  upstreamTls: (upstream: string) =>
    reply('upstream-tls', 451, '4.4.0', `TLS with upstream ${upstream} failed (no STARTTLS or untrusted certificate); nothing was sent in cleartext`),
  // A configuration the tenant must fix: retried (4xx), so nothing is lost while it does.
  upstreamHostForbidden: (upstream: string, why: string) => reply('upstream-host-forbidden', 451, '4.4.0', `Upstream ${upstream} not used: ${why}`),
  upstreamNo8BitMime: (upstream: string) =>
    reply('upstream-no-8bitmime', 554, '5.6.3', `Upstream ${upstream} does not accept 8-bit content (no 8BITMIME); the message would be altered`),
  upstreamNoSmtpUtf8: (upstream: string) => reply('upstream-no-smtputf8', 553, '5.6.7', `Upstream ${upstream} does not accept UTF-8 addresses (no SMTPUTF8)`),
  upstreamAuth: (upstream: string) => reply('upstream-auth', 451, '4.4.0', `Upstream ${upstream} refused the relay's credentials; please try again later`),
  upstreamTokenFailed: (upstream: string, reason: string) =>
    reply('upstream-token-failed', 451, '4.7.0', `Upstream ${upstream}: no OAuth2 access token (${reason}); please try again later`),
  upstreamBasicAuthDisabled: (upstream: string) =>
    reply('upstream-basic-auth-disabled', 451, '4.7.0', `Upstream ${upstream}: basic authentication is disabled for this tenant: configure oauth2`),
  upstreamSmtpAuthDisabled: (upstream: string) =>
    reply('upstream-smtp-auth-disabled', 451, '4.7.0', `Upstream ${upstream}: SMTP AUTH is disabled for the Microsoft 365 tenant or mailbox: turn it on (Set-CASMailbox -SmtpClientAuthenticationDisabled $false)`),
  upstreamThrottled: (upstream: string, said: string) =>
    reply('upstream-throttled', 451, '4.4.1', `Upstream ${upstream} asks the relay to slow down; its mail is paced and retried: ${said}`),
  upstreamQuotaExceeded: (upstream: string, said: string) =>
    reply('upstream-quota-exceeded', 451, '4.2.0', `Upstream ${upstream}: the mailbox's sending quota is used up; retried when it frees: ${said}`),
  upstreamTempFail: (upstream: string, said: string) => reply('upstream-temp-fail', 451, '4.4.0', `Upstream ${upstream} deferred the message: ${said}`),
  upstreamRejected: (upstream: string, code: number, said: string, enhanced = '5.0.0') =>
    reply('upstream-rejected', code, enhanced, `Upstream ${upstream} rejected the message: ${said}`),
  partlyDeferred: (accepted: number, total: number, detail: string) =>
    reply('partly-deferred', 451, '4.4.0', `Only ${accepted} of ${total} recipients were accepted upstream (${detail}); a retry may duplicate for those`),
  partlyRejected: (accepted: number, total: number, detail: string) =>
    reply('partly-rejected', 554, '5.0.0', `Only ${accepted} of ${total} recipients were accepted upstream; refused: ${detail}`),
  // Queue mode: what a recipient still pending at the end of the message's lifetime fails with.
  deliveryExpired: (lastReply: string) => reply('delivery-expired', 554, '5.4.7', `Delivery time expired; last reply: ${lastReply}`),
} as const;

type ReplyOf<T> = T extends (...args: never[]) => infer R ? R : T;
/** Every id the table declares. */
export type ReplyId = { [K in keyof typeof Replies]: ReplyOf<(typeof Replies)[K]> extends { id: infer I } ? I : never }[keyof typeof Replies];

/** What sanitizeUpstreamText would change: a control character, whitespace other than one space between words. */
const UNCLEAN = /[\u0000-\u001f\u007f-\u009f]|[^\S ]| {2}|^ | $/;

/** Text from an upstream is shown to our client: one line, printable, bounded. */
export function sanitizeUpstreamText(text: string, max = 200): string {
  // Most text is clean already (the trace store passes every reply and address through here): returned as it is, not copied.
  if (text.length <= max && !UNCLEAN.test(text)) return text;
  const line = text
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

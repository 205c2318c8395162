// What an upstream's answer means for each recipient: sent, temporary (retry) or permanent (do not).
// nodemailer resolves even when some recipients were refused, so every outcome is per recipient.
import { Replies, type SmtpReply, sanitizeUpstreamText } from '../errors.js';
import type { RecipientOutcome } from '../types.js';
import { isQuotaReply, providerSignalOf } from './provider-replies.js';
import { parseUpstreamReply } from './upstream-reply.js';

interface UpstreamError extends Error {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  recipient?: string;
  rejectedErrors?: UpstreamError[];
}

interface UpstreamInfo {
  accepted?: unknown[];
  rejectedErrors?: UpstreamError[];
  /** The upstream's reply to the final dot. */
  response?: string;
}

export function outcomesFromInfo(upstream: string, recipients: readonly string[], info: UpstreamInfo): RecipientOutcome[] {
  const accepted = new Set((info.accepted ?? []).map((a) => String(a).toLowerCase()));
  const errors = new Map((info.rejectedErrors ?? []).map((e) => [String(e.recipient ?? '').toLowerCase(), e]));
  return recipients.map((recipient) => {
    const key = recipient.toLowerCase();
    const err = errors.get(key);
    if (err) return outcomeForError(upstream, recipient, err);
    if (accepted.has(key)) {
      const said = parseUpstreamReply(info.response);
      return { recipient, status: 'sent', reply: Replies.delivered(upstream), ...(said ? { upstreamReply: said } : {}) };
    }
    // Neither accepted nor refused by name: treat as not delivered, and retryable.
    return { recipient, status: 'temp', reply: Replies.upstreamTempFail(upstream, 'recipient not acknowledged') };
  });
}

/**
 * `streamed`: the whole message had gone out when the error came. Without a reply from the upstream
 * (the connection dropped, or it went silent after the final dot) it may have kept the message.
 */
export function outcomesFromError(upstream: string, recipients: readonly string[], err: UpstreamError, sent: { streamed: boolean } = { streamed: false }): RecipientOutcome[] {
  // All recipients refused at RCPT: nodemailer lists each one's own reply.
  const perRecipient = new Map((err.rejectedErrors ?? []).map((e) => [String(e.recipient ?? '').toLowerCase(), e]));
  const mayHaveArrived = sent.streamed && err.responseCode === undefined;
  return recipients.map((recipient) => {
    const outcome = outcomeForError(upstream, recipient, perRecipient.get(recipient.toLowerCase()) ?? err);
    return mayHaveArrived && outcome.status === 'temp' ? { ...outcome, mayHaveArrived } : outcome;
  });
}

function outcomeForError(upstream: string, recipient: string, err: UpstreamError): RecipientOutcome {
  const reply = replyFor(upstream, err);
  const said = err.responseCode !== undefined ? parseUpstreamReply(err.response) : undefined;
  return { recipient, status: reply.code >= 500 ? 'perm' : 'temp', reply, ...(said ? { upstreamReply: said } : {}) };
}

export function replyForError(upstream: string, err: Error): SmtpReply {
  return replyFor(upstream, err as UpstreamError);
}

function replyFor(upstream: string, err: UpstreamError): SmtpReply {
  const code = err.responseCode;
  const said = sanitizeUpstreamText(err.response ?? err.message);
  // No access token (the endpoint refused the client, or is down): the tenant's setup, not the message.
  if (err.code === 'ETOKEN' || err.originalCode === 'ETOKEN') return Replies.upstreamTokenFailed(upstream, (err as { reason?: string }).reason ?? said);
  // Microsoft 365's AUTH refusals (535 5.7.139, 550 5.7.30) each want their own fix; none is the
  // message's fault: deferred, never bounced.
  const microsoft = code !== undefined ? microsoftAuthRefusal(said) : undefined;
  if (microsoft === 'smtp-auth-disabled') return Replies.upstreamSmtpAuthDisabled(upstream);
  if (microsoft === 'basic-auth-disabled') return Replies.upstreamBasicAuthDisabled(upstream);
  if (microsoft === 'credentials') return Replies.upstreamAuth(upstream);
  // A provider's daily or per-minute quota (provider-quotas.ts): not a bad recipient; deferred until it frees.
  if (isQuotaReply(said)) return Replies.upstreamQuotaExceeded(upstream, said);
  // Bad credentials or a failed handshake are the relay's configuration, not the message: retry.
  if (err.code === 'EAUTH' || err.code === 'ENOAUTH') return Replies.upstreamAuth(upstream);
  // Before the reply code: a "500 unknown command" to STARTTLS is a TLS failure, not a bounce.
  if (isTlsFailure(err)) return Replies.upstreamTls(upstream);
  if (code !== undefined && code >= 500 && code !== 503) {
    const relayed = [550, 551, 552, 553, 554].includes(code) ? code : 554;
    return Replies.upstreamRejected(upstream, relayed, said, permanentEnhancedIn(said) ?? '5.0.0');
  }
  // A provider pacing this mailbox (provider-replies.ts): deferred, and the scheduler slows down for it.
  if (code !== undefined && code >= 400 && code < 500 && providerSignalOf(said) === 'throttle') return Replies.upstreamThrottled(upstream, said);
  // A 4xx from the next hop is, to our client, a delivery (4.4.x) problem whatever class the upstream gave.
  if (code !== undefined && code >= 400) return Replies.upstreamTempFail(upstream, said);
  if (err.code === 'EABORT' || err.code === 'ETIMEDOUT') return Replies.upstreamTimeout(upstream);
  if (err.code === 'EDNS' || err.originalCode === 'ECONNREFUSED' || /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/.test(err.message)) {
    return Replies.upstreamUnreachable(upstream);
  }
  return Replies.upstreamConnectionLost(upstream);
}

/**
 * What a Microsoft 365 AUTH refusal means, from its text (one code, 5.7.139, has several causes):
 * "SmtpClientAuthentication is disabled for the Tenant/Mailbox" (SMTP AUTH off: turn it on, OAuth2 needs
 * it too); "the user credentials were incorrect" or "account locked" (the credentials); "basic
 * authentication is disabled", security defaults or a Conditional Access policy ("did not meet the
 * criteria"), 550 5.7.30, or 5.7.139 with no more said (basic authentication refused: configure oauth2).
 */
export function microsoftAuthRefusal(said: string): 'smtp-auth-disabled' | 'basic-auth-disabled' | 'credentials' | undefined {
  if (!/\b5\.7\.(139|30)\b/.test(said)) return undefined;
  if (/SmtpClientAuthentication is disabled/i.test(said)) return 'smtp-auth-disabled';
  if (/credentials were incorrect|account (is )?locked|locked (out|due)/i.test(said)) return 'credentials';
  return 'basic-auth-disabled';
}

function isTlsFailure(err: UpstreamError): boolean {
  if (err.code === 'ETLS') return true;
  // Certificate and handshake errors come from node:tls as socket errors, with no reply code.
  return err.responseCode === undefined && /certificate|self[- ]signed|TLS|SSL|handshake/i.test(err.message);
}

/** The 5.x.x code an upstream put after its reply code (e.g. 5.1.1, unknown user): worth passing on. */
function permanentEnhancedIn(said: string): string | undefined {
  return /^5\d\d[ -](5\.\d{1,3}\.\d{1,3})\b/.exec(said)?.[1];
}

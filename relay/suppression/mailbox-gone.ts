// Which permanent failures mean "this mailbox will not take mail" (the address is suppressed for the
// tenant), declared once. Not every 5xx: a policy refusal (5.7.x), a message too big (5.3.4), a full
// mailbox (5.2.2) or a routing fault (5.4.x) says nothing about the address itself.
//
// By enhanced code (RFC 3463): 5.1.1 bad destination mailbox address (user unknown: Postfix, Exchange
// "5.1.1 RESOLVER.ADR.RecipNotFound", Gmail "5.1.1 The email account that you tried to reach does not
// exist"); 5.1.10 recipient address has a null MX (RFC 7505); 5.2.1 mailbox disabled, not accepting
// messages (Gmail "5.2.1 The email account that you tried to reach is disabled").
// By text, for servers that give no enhanced code: "User unknown", "No such user", "Unknown user",
// "mailbox ... does not exist", "Recipient not found".
import type { UpstreamReply } from '../types.js';

const CODES = new Set(['5.1.1', '5.1.10', '5.2.1']);
const TEXTS = /\b(user unknown|no such (user|mailbox|recipient)|unknown (user|recipient)|recipient not found|mailbox (does not|doesn't) exist|address does not exist)\b/i;

/** The upstream's own reply says the recipient's mailbox will not take mail, ever. */
export function mailboxGone(said: UpstreamReply | undefined): boolean {
  if (!said || said.code < 500 || said.code > 599) return false;
  if (said.enhanced) return CODES.has(said.enhanced);
  return TEXTS.test(said.text);
}

// The envelope the upstream sees: the client's, with MAIL FROM rewritten when the tenant asks for it.
import type { Envelope, RouteDecision } from '../types.js';

export function outboundEnvelope(received: Envelope, decision: RouteDecision): Envelope {
  const sender = decision.rewrites.envelopeSender;
  // The null sender marks a bounce; giving it an address would invite bounce loops.
  if (sender === undefined || received.mailFrom === '') return received;
  return { mailFrom: sender, rcptTo: received.rcptTo };
}

// A transaction between MAIL FROM and its end: what the decision at MAIL FROM holds until the final dot
// (the snapshot, the decision, a place in the sending budgets, room on the spool's volume), and the
// Transaction the final dot hands to the intake.
import { performance } from 'node:perf_hooks';
import type { Config } from '../../config/types.js';
import { newMessageId } from '../ids.js';
import { outboundEnvelope } from '../message/envelope.js';
import type { RouteDecision } from '../types.js';
import type { Transaction } from './intake.js';
import type { InboundSession } from './smtp/session-types.js';

/** The decision made at MAIL FROM, kept until the final dot. */
export interface OpenTransaction {
  readonly config: Config;
  readonly decision: RouteDecision;
  /** Pass-through: the message's place in its sending budgets, settled with what was sent. */
  readonly settle?: (sentRecipients: number) => void;
  /** Queue mode: the room held on the spool's volume while the message is received. */
  readonly room?: { readonly release: () => void };
}

/** A transaction ends (its dot, a new MAIL FROM, RSET, the client gone): what it held is given back. */
export function endTransaction(p: OpenTransaction | undefined, sent = 0): void {
  p?.settle?.(sent);
  p?.room?.release();
}

/** The transaction a DATA command completes: id, the snapshot and decision from MAIL FROM, the envelope as it goes out. */
export function transactionOf(session: InboundSession, { config, decision }: OpenTransaction): Transaction {
  const id = newMessageId();
  const user = session.user?.username;
  const received = {
    mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
  };
  return {
    id,
    config,
    decision,
    envelope: outboundEnvelope(received, decision),
    trace: {
      id,
      receivedAt: new Date(),
      byHost: config.hostname,
      clientAddress: session.remoteAddress,
      helo: session.hostNameAppearsAs,
      clientHostname: session.clientHostname,
      tls: session.secure,
      authenticated: Boolean(session.user),
      recipients: received.rcptTo,
    },
    log: {
      session: session.id,
      id,
      tenant: decision.tenant?.id ?? null,
      client: session.remoteAddress,
      ...(user ? { user } : {}),
      from: received.mailFrom,
      rcpt: received.rcptTo.length,
    },
    startedAt: performance.now(),
  };
}

export const msSince = (tx: Transaction) => Math.round(performance.now() - tx.startedAt);

// Message ids (the queue id in replies, logs, the Received header and the spool's file names) and session
// ids (logs). Time first, so that ids sort roughly by arrival; then this process's random tag and a
// counter, so ids never collide across processes or restarts. No system random source per id: it costs a
// system call or two each time, and these need to be unique, not secret.
import { randomBytes } from 'node:crypto';

const TAG = randomBytes(4).toString('hex');
let counter = 0;

export function newMessageId(): string {
  return `${Date.now().toString(36)}${TAG}${(counter++ % 1_679_616).toString(36).padStart(4, '0')}`;
}

let sessions = 0;

export function newSessionId(): string {
  return `${Date.now().toString(36)}${TAG}${(sessions++ % 1_679_616).toString(36).padStart(4, '0')}`;
}

let nonces = 0;

/**
 * A value no other call of this process, nor of any other process or restart, returns: for ids that must
 * not repeat (an attempt's delivery events after a restart), without a system random source per call.
 */
export function newNonce(): string {
  return `${TAG}${(nonces++).toString(36)}`;
}

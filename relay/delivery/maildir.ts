// Local delivery into a maildir (tmp/ then rename into new/), so a development relay needs no mail server.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MaildirUpstream } from '../../config/types.js';
import { Replies } from '../errors.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';
import type { DeliveryResult, Envelope, MessageSource } from '../types.js';
import { isInMemory, partsOf } from '../message-bytes.js';

export async function deliverToMaildir(upstream: MaildirUpstream, envelope: Envelope, source: MessageSource): Promise<DeliveryResult> {
  try {
    const message = isInMemory(source) ? partsOf(source) : [await fs.readFile(source.path)];
    const name = `${Date.now()}.P${process.pid}R${randomBytes(6).toString('hex')}.${os.hostname().replace(/[/:]/g, '_')}`;
    await Promise.all(['tmp', 'new', 'cur'].map((d) => fs.mkdir(path.join(upstream.path, d), { recursive: true, mode: PRIVATE_DIR })));
    const tmp = path.join(upstream.path, 'tmp', name);
    // Return-Path records the envelope sender, as a final delivery agent does.
    const header = Buffer.from(`Return-Path: <${envelope.mailFrom}>\r\nDelivered-To: ${envelope.rcptTo.join(', ')}\r\n`);
    const file = await fs.open(tmp, 'wx', PRIVATE_FILE);
    try {
      await file.writeFile(Buffer.concat([header, ...message]));
      await file.sync();
    } finally {
      await file.close();
    }
    await fs.rename(tmp, path.join(upstream.path, 'new', name));
    return { upstream: upstream.name, outcomes: envelope.rcptTo.map((recipient) => ({ recipient, status: 'sent', reply: Replies.delivered(upstream.name) })) };
  } catch {
    return { upstream: upstream.name, outcomes: envelope.rcptTo.map((recipient) => ({ recipient, status: 'temp', reply: Replies.localError })) };
  }
}

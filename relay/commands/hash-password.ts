// tenant-relay hash-password: an scrypt hash for inbound.users. At a terminal it asks twice, without
// echo; else it reads the first line of standard input (`echo -n pw | tenant-relay hash-password`).
import { hashPassword } from '../inbound/passwords.js';
import type { CommandIo } from './io.js';

export async function hashPasswordCommand(_args: string[], io: CommandIo, terminal = process.stdin.isTTY === true): Promise<number> {
  const password = await io.secret('Password (not shown): ');
  if (!password) {
    io.err('tenant-relay hash-password: no password given (type it at the prompt, or pipe it: echo -n PW | tenant-relay hash-password)');
    return 2;
  }
  if (terminal && (await io.secret('Again, to be sure: ')) !== password) {
    io.err('tenant-relay hash-password: the two entries differ; nothing was hashed');
    return 1;
  }
  io.out(await hashPassword(password));
  return 0;
}

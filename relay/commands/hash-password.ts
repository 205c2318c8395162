// tenant-relay hash-password: an scrypt hash for inbound.users, from a password on stdin.
import { hashPassword } from '../inbound/passwords.js';
import type { CommandIo } from './io.js';

export async function hashPasswordCommand(_args: string[], io: CommandIo): Promise<number> {
  const password = io.stdin().replace(/\r?\n$/, '');
  if (!password) {
    io.err('tenant-relay hash-password: give the password on standard input');
    return 2;
  }
  io.out(await hashPassword(password));
  return 0;
}

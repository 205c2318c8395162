// tenant-relay hash-password: an scrypt hash for inbound.users, from a password on stdin.
import { readFileSync } from 'node:fs';
import { hashPassword } from '../inbound/passwords.js';

export async function hashPasswordCommand(): Promise<number> {
  const password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (!password) {
    console.error('tenant-relay hash-password: give the password on standard input');
    return 2;
  }
  console.log(await hashPassword(password));
  return 0;
}

// What tells one credential from another without holding or showing it: an HMAC of its secret material.
// Token caches, connection pools and shared mailbox budgets key on it, so two tenants that type the same
// public facts (an Entra tenant id, a client id, a mailbox, a service account's name) with different
// secrets never share a token, a connection or a budget. The key is the relays' shared signing key when
// they share Redis (every relay must name a shared budget alike), else one drawn by this process.
import { createHmac, randomBytes } from 'node:crypto';

const PROCESS_KEY = randomBytes(32);

export function credentialId(sharedKey: string | undefined, ...material: readonly string[]): string {
  const mac = createHmac('sha256', sharedKey ?? PROCESS_KEY);
  for (const part of material) mac.update(part).update('\0');
  return mac.digest('base64url').slice(0, 22);
}

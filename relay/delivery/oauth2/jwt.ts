// JSON Web Tokens signed with RS256 (RSASSA-PKCS1-v1_5, SHA-256), all the two grants below need: a client
// assertion for Microsoft's certificate credential, and a service account's assertion for Google.
import { createPrivateKey, createSign } from 'node:crypto';

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, privateKeyPem: string): string {
  const input = `${part({ alg: 'RS256', typ: 'JWT', ...header })}.${part(claims)}`;
  const signature = createSign('RSA-SHA256').update(input).sign(createPrivateKey(privateKeyPem)).toString('base64url');
  return `${input}.${signature}`;
}

/** The claims of a JWT, unverified (for what an access token says about itself: expiry, scopes). */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const [, payload] = token.split('.');
  if (!payload) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

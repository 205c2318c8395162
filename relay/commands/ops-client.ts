// The commands' way to the running relay on this machine: its ops listener, with a token of the scope the
// endpoint needs, over TLS when ops.tls is set. A listener on every address is reached on loopback; there
// the certificate (issued for the name others use) is not checked against 127.0.0.1: the connection does
// not leave the machine.
import http from 'node:http';
import https from 'node:https';
import { isLoopbackHost } from '../../config/networks.js';
import type { Config, OpsScope } from '../../config/types.js';

export class OpsUnavailable extends Error {}

export interface OpsReply {
  readonly status: number;
  readonly json: unknown;
}

export function opsBase(config: Config): string {
  const host = config.ops.host === '0.0.0.0' ? '127.0.0.1' : config.ops.host === '::' ? '[::1]' : config.ops.host.includes(':') ? `[${config.ops.host}]` : config.ops.host;
  return `${config.ops.tls ? 'https' : 'http'}://${host}:${config.ops.port}`;
}

/** Why the command cannot ask the relay for `scope`, or undefined when it can. */
export function opsRefusal(config: Config, scope: OpsScope): string | undefined {
  if (!config.ops.enabled) return 'the ops listener is off (ops.enabled: false)';
  if (config.ops.openScopes.includes(scope) || config.ops.tokens.some((t) => t.scopes.includes(scope) && t.tenant === undefined)) return undefined;
  return `needs a token with the ${scope} scope in ops.token or ops.tokens`;
}

export function askRelay(config: Config, scope: OpsScope, method: 'GET' | 'POST', path: string, timeoutMs = 10_000): Promise<OpsReply> {
  const token = config.ops.openScopes.includes(scope) ? undefined : config.ops.tokens.find((t) => t.scopes.includes(scope) && t.tenant === undefined)?.token;
  const url = new URL(`${opsBase(config)}${path}`);
  const local = isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ''));
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(
      url,
      {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}) },
        signal: AbortSignal.timeout(timeoutMs),
        ...(url.protocol === 'https:' && local ? { rejectUnauthorized: false } : {}),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {
            // Not JSON: the text stands.
          }
          resolve({ status: response.statusCode ?? 0, json });
        });
      },
    );
    request.on('error', (err: NodeJS.ErrnoException) => {
      const where = `${url.protocol}//${url.host}`;
      if (err.code === 'ECONNREFUSED') return reject(new OpsUnavailable(`no relay answers on its ops listener at ${where} (is it running? ops.host and ops.port in the config)`));
      if (err.name === 'TimeoutError' || err.name === 'AbortError') return reject(new OpsUnavailable(`the relay at ${where} did not answer within ${timeoutMs / 1000} s`));
      reject(new OpsUnavailable(`cannot reach the relay at ${where}: ${err.code ?? err.message}`));
    });
    request.end();
  });
}

// One GET to the platform: a deadline, a size cap, TLS checked against the system store or the configured
// CA. The answer is classified here; the caller decides what to cache.
import http from 'node:http';
import https from 'node:https';
import type { TenantSourceSettings } from '../../config/types.js';
import type { TenantQuery } from '../../config/tenant-record.js';

/** A tenant record is a few kilobytes; anything near this is not one. */
const MAX_BODY_BYTES = 256 * 1024;

export type FetchedRecord =
  | { readonly kind: 'record'; readonly json: unknown }
  /** `domainUnclaimed`: the platform said no tenant has any address at the sender's domain. */
  | { readonly kind: 'not-found'; readonly domainUnclaimed?: boolean }
  | { readonly kind: 'failed'; readonly reason: string; readonly timeout?: boolean };

export function lookupUrl(settings: TenantSourceSettings, query: TenantQuery): URL {
  const url = new URL(`${settings.url}/tenants/lookup`);
  url.searchParams.set(query.by, query.value);
  return url;
}

export function fetchRecord(settings: TenantSourceSettings, query: TenantQuery, signal: AbortSignal): Promise<FetchedRecord> {
  const url = lookupUrl(settings, query);
  const client = url.protocol === 'https:' ? https : http;
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(settings.timeoutMs)]);
  return new Promise((resolve) => {
    const failed = (reason: string) => resolve({ kind: 'failed', reason, ...(deadline.reason?.name === 'TimeoutError' ? { timeout: true } : {}) });
    const request = client.get(
      url,
      {
        signal: deadline,
        headers: { accept: 'application/json', ...(settings.token !== undefined ? { authorization: `Bearer ${settings.token}` } : {}) },
        ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
        // A fresh connection per lookup would cost a TLS handshake each; lookups are rare enough to share one.
        agent: url.protocol === 'https:' ? httpsAgent : httpAgent,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status === 404) {
          // The body may say the whole domain is nobody's: { "domainClaimed": false } (small, or ignored).
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= 1024) chunks.push(chunk);
          });
          response.on('error', () => resolve({ kind: 'not-found' }));
          response.on('end', () => {
            let unclaimed = false;
            try {
              unclaimed = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { domainClaimed?: unknown }).domainClaimed === false;
            } catch {
              // An empty or other body: a 404 for this key only.
            }
            resolve({ kind: 'not-found', ...(unclaimed && query.by === 'sender' ? { domainUnclaimed: true } : {}) });
          });
          return;
        }
        if (status !== 200) {
          response.resume();
          return failed(`HTTP ${status}`);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) return response.destroy(new Error(`answer larger than ${MAX_BODY_BYTES} bytes`));
          chunks.push(chunk);
        });
        response.on('error', (err) => failed(deadline.aborted ? `no answer within ${settings.timeoutMs} ms` : err.message));
        response.on('end', () => {
          try {
            resolve({ kind: 'record', json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch {
            failed('answer is not JSON');
          }
        });
      },
    );
    request.on('error', (err) => failed(deadline.aborted ? `no answer within ${settings.timeoutMs} ms` : err.message));
  });
}

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16 });

// One GET to the platform (through the relay's HTTP client: a deadline, a size cap, TLS checked, kept-alive
// connections). The answer is classified here; the caller decides what to cache.
import type { TenantSourceSettings } from '../../config/types.js';
import type { TenantQuery } from '../../config/tenant-record.js';
import { jsonOf, requestHttp } from '../http-client.js';

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

export async function fetchRecord(settings: TenantSourceSettings, query: TenantQuery, signal: AbortSignal): Promise<FetchedRecord> {
  const answer = await requestHttp({
    url: lookupUrl(settings, query),
    headers: { accept: 'application/json', ...(settings.token !== undefined ? { authorization: `Bearer ${settings.token}` } : {}) },
    ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
    timeoutMs: settings.timeoutMs,
    maxBytes: MAX_BODY_BYTES,
    signal,
  });
  if (answer.kind === 'failed') return { kind: 'failed', reason: answer.timeout ? `no answer within ${settings.timeoutMs} ms` : answer.message, ...(answer.timeout ? { timeout: true } : {}) };
  if (answer.status === 404) {
    // The body may say the whole domain is nobody's: { "domainClaimed": false } (small, or ignored).
    const said = answer.body.length <= 1024 ? jsonOf(answer.body) : undefined;
    const unclaimed = !!said && typeof said === 'object' && (said as { domainClaimed?: unknown }).domainClaimed === false;
    return { kind: 'not-found', ...(unclaimed && query.by === 'sender' ? { domainUnclaimed: true } : {}) };
  }
  if (answer.status !== 200) return { kind: 'failed', reason: `HTTP ${answer.status}` };
  if (answer.truncated) return { kind: 'failed', reason: `answer larger than ${MAX_BODY_BYTES} bytes` };
  const json = jsonOf(answer.body);
  return json === undefined ? { kind: 'failed', reason: 'answer is not JSON' } : { kind: 'record', json };
}

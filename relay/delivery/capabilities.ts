// What an upstream says in EHLO, asked for only when a message needs it (an 8-bit body, a UTF-8
// address): a message the upstream never offered 8BITMIME or SMTPUTF8 for would arrive mangled, so it is
// refused instead (deliver.ts). Answers are kept for ten minutes per upstream settings.
import { LRUCache } from 'lru-cache';
import type { SmtpUpstream } from '../../config/types.js';
import { probeOptions } from './pools.js';
import { SmtpClientConnection } from './smtp-client.js';

export class UpstreamCapabilities {
  readonly #heloName: string;
  readonly #cache = new LRUCache<string, Promise<ReadonlySet<string>>>({ max: 1000, ttl: 10 * 60_000 });

  constructor(heloName: string) {
    this.#heloName = heloName;
  }

  get(upstream: SmtpUpstream): Promise<ReadonlySet<string>> {
    const options = probeOptions(upstream, this.#heloName);
    const key = JSON.stringify(options);
    let answer = this.#cache.get(key);
    if (!answer) {
      answer = probe(options);
      this.#cache.set(key, answer);
      // A failed probe is not an answer: the next message asks again.
      answer.catch(() => this.#cache.delete(key));
    }
    return answer;
  }
}

/** Connects (EHLO, and after STARTTLS the second EHLO when TLS is required), reads the offer, says QUIT. */
async function probe(options: Parameters<typeof SmtpClientConnection.open>[0]): Promise<ReadonlySet<string>> {
  const connection = await SmtpClientConnection.open(options);
  const offered = connection.extensions;
  connection.quit();
  return offered;
}

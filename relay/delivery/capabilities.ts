// What an upstream says in EHLO, asked for only when a message needs it (an 8-bit body, a UTF-8
// address): nodemailer would send either to a server that never offered 8BITMIME or SMTPUTF8, and the
// message would arrive mangled. Answers are kept for ten minutes per upstream settings.
import { LRUCache } from 'lru-cache';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SmtpUpstream } from '../../config/types.js';
import { offeredExtensions } from './nodemailer-seams.js';
import { transportOptions } from './pools.js';

export class UpstreamCapabilities {
  readonly #heloName: string;
  readonly #cache = new LRUCache<string, Promise<ReadonlySet<string>>>({ max: 1000, ttl: 10 * 60_000 });

  constructor(heloName: string) {
    this.#heloName = heloName;
  }

  get(upstream: SmtpUpstream): Promise<ReadonlySet<string>> {
    const { pool: _pool, maxConnections: _max, maxMessages: _msgs, ...options } = transportOptions(upstream, this.#heloName);
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

function probe(options: ConstructorParameters<typeof SMTPConnection>[0]): Promise<ReadonlySet<string>> {
  return new Promise((resolve, reject) => {
    const connection = new SMTPConnection(options);
    connection.once('error', reject);
    // connect() ends after EHLO, and after STARTTLS and the second EHLO when TLS is required.
    connection.connect(() => {
      resolve(offeredExtensions(connection));
      connection.quit();
    });
  });
}

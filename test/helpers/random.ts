// A small seeded generator for the tests that pick random points: a failing run is repeated by setting
// the seed it printed.
export function seededRandom(envName: string): { seed: number; random: () => number } {
  const seed = Number(process.env[envName] ?? Date.now() % 100_000);
  let state = seed;
  return {
    seed,
    random: () => {
      state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
      return state / 2 ** 31;
    },
  };
}

/** A generator from a fixed seed: the same cases on every run, so a failure is the same on every run. */
export function fixedRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** A random message of up to `maxLength` bytes from `alphabet`, cut into chunks of 1 to `maxChunk` bytes. */
export function randomChunks(random: () => number, alphabet: readonly number[], maxLength: number, maxChunk: number): Buffer[] {
  const bytes = Buffer.from(Array.from({ length: Math.floor(random() * maxLength) }, () => alphabet[Math.floor(random() * alphabet.length)] as number));
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

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

// "Did you mean": for an unknown key, the known key at the same place that it is closest to (a typo, a
// different case), read from the schema itself so the suggestion can never name a key that does not exist.
import type { z } from 'zod';

interface Def {
  readonly type: string;
  readonly shape?: Record<string, z.ZodType>;
  readonly innerType?: z.ZodType;
  readonly in?: z.ZodType;
  readonly out?: z.ZodType;
  readonly element?: z.ZodType;
  readonly options?: readonly z.ZodType[];
}

const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The keys an object at `path` may have (several objects for a union: all their keys). */
export function knownKeysAt(schema: z.ZodType, path: readonly (string | number)[]): string[] {
  let nodes: z.ZodType[] = [schema];
  for (const step of [...path, undefined]) {
    nodes = nodes.flatMap(unwrap);
    if (step === undefined) break;
    nodes = nodes.flatMap((n) => {
      const def = defOf(n);
      if (typeof step === 'number') return def.type === 'array' && def.element ? [def.element] : [];
      return def.type === 'object' && def.shape?.[step] ? [def.shape[step]] : [];
    });
  }
  return [...new Set(nodes.flatMap((n) => Object.keys(defOf(n).shape ?? {})))];
}

function unwrap(s: z.ZodType): z.ZodType[] {
  const def = defOf(s);
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'nullable':
    case 'prefault':
      return def.innerType ? unwrap(def.innerType) : [];
    case 'pipe':
      return [...(def.in ? unwrap(def.in) : []), ...(def.out ? unwrap(def.out) : [])];
    case 'union':
      return (def.options ?? []).flatMap(unwrap);
    default:
      return [s];
  }
}

/** The known key nearest to `key`, when it is near enough to be what was meant. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key.toLowerCase(), k.toLowerCase());
    if (!best || d < best.distance) best = { key: k, distance: d };
  }
  return best && best.distance <= Math.max(1, Math.floor(key.length / 4)) ? best.key : undefined;
}

/** Edits between two keys (insert, delete, change, or swap two neighbours: "prot" is one from "port"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      row[j] = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(at(i, j), at(i - 2, j - 2) + 1);
    }
  }
  return at(a.length, b.length);
}

// What the builders share: a CA file read (a problem at its key when it cannot be), a value frozen deeply.
import fs from 'node:fs';
import path from 'node:path';
import type { PathIssue } from './validate.js';

/** The PEM text of a private CA file, or a problem at `at` when it cannot be read. */
export function readCa(file: string | undefined, at: (string | number)[], problems: PathIssue[]): string | undefined {
  if (file === undefined) return undefined;
  try {
    return fs.readFileSync(path.resolve(file), 'utf8');
  } catch (err) {
    problems.push({ path: at, message: `cannot read CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}` });
    return undefined;
  }
}

/** The snapshot is immutable all the way down: a reload swaps it, nothing edits it. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

// Reads a YAML file once, validates it whole, and returns a frozen snapshot; or throws a ConfigError that
// lists every problem as file:line:column: key: message, the way compilers do.
import fs from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { buildConfig } from './build.js';
import { configSchema } from './schema.js';
import { substituteSecrets } from './secrets.js';
import type { Config } from './types.js';
import { crossCheck, type PathIssue } from './validate.js';

export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted key path, e.g. "tenants[2].upstream.port"; empty for the whole file. */
  readonly key: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.key ? `${i.key}: ` : ''}${i.message}`;
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: 0, column: 0, key: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (p: readonly (string | number)[], message: string): ConfigIssue => {
    const { line, col } = lines.linePos(offsetOf(doc.contents, p));
    return { file, line, column: col, key: keyPath(p), message };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const { line, col } = lines.linePos(e.pos[0]);
        return { file, line, column: col, key: '', message: e.message.split('\n')[0] ?? e.message };
      }),
    );
  }

  const secretIssues: PathIssue[] = [];
  const input = substituteSecrets(doc.toJS() ?? {}, env, secretIssues);
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.flatMap((issue) => {
        const p = issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
        if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => at([...p, k], 'unknown key'));
        return [at(p, issue.code === 'invalid_type' && /received undefined$/.test(issue.message) ? 'is required' : issue.message)];
      }),
    );
  }
  const problems = [...secretIssues, ...crossCheck(parsed.data)];
  const config = buildConfig(parsed.data, path.resolve(file), problems);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => at(p.path, p.message)));
  return config;
}

function keyPath(p: readonly (string | number)[]): string {
  return p.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** Where in the text a key path points: the key itself when it exists, else its nearest present parent. */
function offsetOf(root: Node | null, p: readonly (string | number)[]): number {
  let node: unknown = root;
  let offset = root?.range?.[0] ?? 0;
  for (const segment of p) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && it.key.value === segment);
      if (!pair) break;
      offset = (isScalar(pair.key) && pair.key.range?.[0]) || offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

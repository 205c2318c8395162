// `${NAME}` takes a value from the environment and `${file:/path}` from a file (Docker and Kubernetes
// secrets), so passwords need not sit in the YAML. `$${` writes a literal `${`.
import fs from 'node:fs';
import nodePath from 'node:path';
import type { PathIssue } from './validate.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;

/** `files`, when given, collects the files that `${file:}` references read (to be watched for changes). */
export function substituteSecrets(value: unknown, env: NodeJS.ProcessEnv, issues: PathIssue[], files?: Set<string>): unknown {
  return walk(value, { env, issues, files }, []);
}

interface Walk {
  readonly env: NodeJS.ProcessEnv;
  readonly issues: PathIssue[];
  readonly files: Set<string> | undefined;
}

// One path stack for the whole walk, copied only into an issue: a 10,000-tenant config has ~500,000
// values. Objects are copied only where a value changed; a config without references is returned as is.
function walk(value: unknown, w: Walk, path: (string | number)[]): unknown {
  if (typeof value === 'string') return value.includes('${') ? substituteString(value, w, path) : value;
  if (!value || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const out = walk(value[i], w, path);
      path.pop();
      if (out !== value[i]) (copy ??= [...value])[i] = out;
    }
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  for (const key in record) {
    path.push(key);
    const out = walk(record[key], w, path);
    path.pop();
    if (out !== record[key]) (copy ??= { ...record })[key] = out;
  }
  return copy ?? value;
}

function substituteString(text: string, { env, issues, files }: Walk, at: readonly (string | number)[]): string {
  const path = [...at];
  return text.replace(REFERENCE, (whole, ref: string | undefined) => {
    if (ref === undefined) return '${';
    if (ref.startsWith('file:')) {
      const file = ref.slice(5);
      files?.add(nodePath.resolve(file));
      try {
        // One trailing newline is how every editor and `echo` ends a file; it is not part of the secret.
        return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        issues.push({ path, message: `cannot read secret file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}` });
        return whole;
      }
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(ref)) {
      issues.push({ path, message: `"\${${ref}}" is not a variable name or file: reference` });
      return whole;
    }
    const found = env[ref];
    if (found === undefined) {
      issues.push({ path, message: `environment variable ${ref} is not set` });
      return whole;
    }
    return found;
  });
}

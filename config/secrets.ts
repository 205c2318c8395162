// `${NAME}` takes a value from the environment and `${file:/path}` from a file (Docker and Kubernetes
// secrets), so passwords need not sit in the YAML. `$${` writes a literal `${`.
import fs from 'node:fs';
import type { PathIssue } from './validate.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;

export function substituteSecrets(value: unknown, env: NodeJS.ProcessEnv, issues: PathIssue[]): unknown {
  return walk(value, env, issues, []);
}

// One path stack for the whole walk, copied only into an issue: a 10,000-tenant file has ~500,000 values.
function walk(value: unknown, env: NodeJS.ProcessEnv, issues: PathIssue[], path: (string | number)[]): unknown {
  if (typeof value === 'string') return value.includes('${') ? substituteString(value, env, issues, path) : value;
  if (!value || typeof value !== 'object') return value;
  const visit = (key: string | number, v: unknown) => {
    path.push(key);
    const out = walk(v, env, issues, path);
    path.pop();
    return out;
  };
  if (Array.isArray(value)) return value.map((v, i) => visit(i, v));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, visit(k, v)]));
}

function substituteString(text: string, env: NodeJS.ProcessEnv, issues: PathIssue[], at: readonly (string | number)[]): string {
  const path = [...at];
  return text.replace(REFERENCE, (whole, ref: string | undefined) => {
    if (ref === undefined) return '${';
    if (ref.startsWith('file:')) {
      const file = ref.slice(5);
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

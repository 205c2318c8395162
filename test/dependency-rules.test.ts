// The arrows between modules, read from their imports: `cli → relay → config`; each stage imports only
// the stages below it on the path (inbound drives the intake, queue drives attempts, routing asks
// tenancy; message and delivery stand on no stage); nothing imports in a circle.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const ROOTS = ['relay', 'config'];
const files = ROOTS.flatMap((root) => fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(root, f)));

/**
 * Each file's imports of project files (type-only ones too: a circle of types is still a circle), static
 * and dynamic (`await import('./x.js')`, which loads a module late but depends on it all the same).
 */
const imports = new Map(
  files.map((file) => {
    const text = fs.readFileSync(file, 'utf8');
    const found = [...text.matchAll(/^(?:import|export)(?:[^'";]*from)?\s*'(\.[^']+)'/gm), ...text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)];
    const targets = found.map((m) => path.join(path.dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts')));
    return [file, targets] as const;
  }),
);

/** The folder a file is in: a stage of the path (inbound, queue, ...), `relay` for the shared top level. */
const areaOf = (file: string) => {
  const [root, folder, rest] = file.split(path.sep);
  if (root === 'config') return 'config';
  return rest === undefined ? 'relay' : (folder ?? '');
};

// Who may import whom. `relay` is the shared top level (types, errors, ids, files, the logger) and imports
// no stage; `ops` is beside the path (metrics, the ops listener) and any stage may use it; `observe`
// declares the outcomes the path emits and holds their subscribers; runtime/ assembles a relay (or a
// primary of workers) from all of them, and cli.ts runs the commands.
const MAY_IMPORT: Record<string, readonly string[]> = {
  config: ['config'],
  relay: ['relay', 'config'],
  ops: ['ops', 'relay', 'config'],
  observe: ['observe', 'delivery', 'relay', 'config', 'ops'],
  message: ['message', 'relay', 'config', 'ops'],
  delivery: ['delivery', 'relay', 'config', 'ops'],
  tenancy: ['tenancy', 'relay', 'config', 'ops'],
  routing: ['routing', 'tenancy', 'relay', 'config', 'ops'],
  // Sending budgets: asked by the two drivers, the intake (pass-through) and the queue.
  limits: ['limits', 'relay', 'config', 'ops'],
  // Addresses a tenant's mail does not go to: asked at RCPT (inbound) and at each attempt (queue).
  suppression: ['suppression', 'relay', 'config', 'ops'],
  queue: ['queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'suppression', 'observe', 'relay', 'config', 'ops'],
  inbound: ['inbound', 'queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'suppression', 'observe', 'relay', 'config', 'ops'],
  // Delivery events and the trace: beside the path like ops, subscribed to its outcomes, never called by it.
  reporting: ['reporting', 'observe', 'relay', 'config', 'ops'],
  // The runtime shell: builds a relay from every stage, runs each process role (single, primary, worker).
  runtime: ['runtime', 'inbound', 'queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'suppression', 'reporting', 'observe', 'relay', 'config', 'ops'],
  commands: ['commands', 'runtime', 'inbound', 'queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'suppression', 'reporting', 'observe', 'relay', 'config', 'ops'],
};
const WIRING = new Set(['relay/cli.ts']);

t.test('every import points down: no stage imports one above it, config imports nothing of the relay', async (t) => {
  const wrong: string[] = [];
  for (const [file, targets] of imports) {
    if (WIRING.has(file)) continue;
    const from = areaOf(file);
    const allowed = MAY_IMPORT[from];
    t.ok(allowed, `${file}: a known area (${from})`);
    for (const target of targets) if (allowed && !allowed.includes(areaOf(target))) wrong.push(`${file} -> ${target}`);
  }
  t.same(wrong, []);
});

/** Every circle in a graph of who depends on whom, each as "a -> b -> a". */
function circlesIn(edges: ReadonlyMap<string, Iterable<string>>): string[] {
  const circles: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (node: string, trail: string[]) => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'visiting') {
      circles.push([...trail.slice(trail.indexOf(node)), node].join(' -> '));
      return;
    }
    state.set(node, 'visiting');
    for (const next of edges.get(node) ?? []) visit(next, [...trail, node]);
    state.set(node, 'done');
  };
  for (const node of edges.keys()) visit(node, []);
  return circles;
}

t.test('no module imports itself through a circle', async (t) => {
  t.same(circlesIn(imports), []);
});

t.test('no stage imports another that imports it back: the stages form no circle either', async (t) => {
  const edges = new Map<string, Set<string>>();
  for (const [file, targets] of imports) {
    if (WIRING.has(file)) continue;
    for (const target of targets) {
      const [from, to] = [areaOf(file), areaOf(target)];
      if (from !== to) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    }
  }
  t.same(circlesIn(edges), []);
});

t.test('dynamic imports are read too', async (t) => {
  t.ok(imports.get(path.join('relay', 'commands', 'serve.ts'))?.some((f) => f.endsWith(path.join('runtime', 'primary.ts'))), 'serve.ts loads runtime/primary.ts with import()');
});

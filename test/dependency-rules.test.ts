// The arrows between modules, read from their imports: `cli → relay → config`; each stage imports only
// the stages below it on the path (inbound drives the intake, queue drives attempts, routing asks
// tenancy; message and delivery stand on no stage); nothing imports in a circle.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const ROOTS = ['relay', 'config'];
const files = ROOTS.flatMap((root) => fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(root, f)));

/** Each file's imports of project files (type-only ones too: a circle of types is still a circle). */
const imports = new Map(
  files.map((file) => {
    const text = fs.readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/^(?:import|export)(?:[^'";]*from)?\s*'(\.[^']+)'/gm)].map((m) => path.join(path.dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts')));
    return [file, targets] as const;
  }),
);

/** The folder a file is in: a stage of the path (inbound, queue, ...), `relay` for the shared top level. */
const areaOf = (file: string) => {
  const [root, folder, rest] = file.split(path.sep);
  if (root === 'config') return 'config';
  return rest === undefined ? 'relay' : (folder ?? '');
};

// Who may import whom. `relay` is the shared top level (types, errors, events, ids, files); `ops` is beside
// the path (logging, metrics) and any stage may use it; relay.ts and cli.ts wire everything.
const MAY_IMPORT: Record<string, readonly string[]> = {
  config: ['config'],
  relay: ['relay', 'config', 'ops'],
  ops: ['ops', 'relay', 'config'],
  message: ['message', 'relay', 'config', 'ops'],
  delivery: ['delivery', 'relay', 'config', 'ops'],
  tenancy: ['tenancy', 'relay', 'config', 'ops'],
  routing: ['routing', 'tenancy', 'relay', 'config', 'ops'],
  // Sending budgets: asked by the two drivers, the intake (pass-through) and the queue.
  limits: ['limits', 'relay', 'config', 'ops'],
  queue: ['queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'relay', 'config', 'ops'],
  inbound: ['inbound', 'queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'relay', 'config', 'ops'],
  // Delivery events and the trace: beside the path like ops, fed by its events, never called by it.
  reporting: ['reporting', 'relay', 'config', 'ops'],
  // The runtime shell: what a running relay (or a primary of workers) answers on its ops listener.
  runtime: ['runtime', 'reporting', 'relay', 'config', 'ops'],
  // The primary of several workers: forks them, asks them over IPC, reads their spools' traces.
  workers: ['workers', 'runtime', 'reporting', 'delivery', 'queue', 'relay', 'config', 'ops'],
  commands: ['commands', 'workers', 'inbound', 'queue', 'routing', 'tenancy', 'message', 'delivery', 'limits', 'reporting', 'relay', 'config', 'ops'],
};
const WIRING = new Set(['relay/relay.ts', 'relay/cli.ts']);

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

t.test('no module imports itself through a circle', async (t) => {
  const circles: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (file: string, trail: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      circles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
      return;
    }
    state.set(file, 'visiting');
    for (const target of imports.get(file) ?? []) visit(target, [...trail, file]);
    state.set(file, 'done');
  };
  for (const file of imports.keys()) visit(file, []);
  t.same(circles, []);
});

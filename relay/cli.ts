#!/usr/bin/env node
// The CLI itself, which bin/tenant-relay (package.json "bin") runs on the right Node: runs a subcommand
// with the process's streams.
import module from 'node:module';
import { printWarnings } from './node-warnings.js';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  // Exit 3: it cannot run here (README, Commands), not a failed check.
  console.error(`tenant-relay needs Node.js 22.19 or later; this is ${process.version}. Run it as bin/tenant-relay (or npx tenant-relay), which uses the Node the project installs (node_modules/.bin/node).`);
  process.exit(3);
}
printWarnings();
// V8 keeps the compiled code of our modules and their dependencies on disk (in the system's temp folder):
// a process started again, by a deploy or after a config error, skips most of the compiling.
module.enableCompileCache?.();

const { runCommand } = await import('./commands/index.js');
const { processIo } = await import('./commands/io.js');
runCommand(process.argv.slice(2), processIo).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);

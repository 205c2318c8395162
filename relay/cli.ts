#!/usr/bin/env node
// The `tenant-relay` command (package.json "bin"): runs a subcommand with the process's streams.
import module from 'node:module';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`tenant-relay needs Node.js 22.19 or later; this is ${process.version}. From a checkout, \`npm start\` runs it on the Node the project installs (node_modules/.bin/node).`);
  process.exit(1);
}
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

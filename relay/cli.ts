#!/usr/bin/env node
// The `tenant-relay` command (package.json "bin"): runs a subcommand with the process's streams.
import { runCommand } from './commands/index.js';
import { processIo } from './commands/io.js';

runCommand(process.argv.slice(2), processIo).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);

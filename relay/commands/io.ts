// Where a command writes and reads: the process's streams when run as `tenant-relay`, a buffer when a
// test runs the command in-process.
import { readFileSync } from 'node:fs';

export interface CommandIo {
  /** One line (or block) of the command's output. */
  out(text: string): void;
  /** One line of diagnostics. */
  err(text: string): void;
  /** All of standard input. */
  stdin(): string;
  /**
   * A secret: typed at a terminal after `prompt`, not echoed; else the first line of standard input
   * (`echo pw | ...`, a file, a pipe from a secret store), so it never sits on a command line.
   */
  secret(prompt: string): Promise<string>;
}

export const processIo: CommandIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
  stdin: () => readFileSync(0, 'utf8'),
  secret: (prompt) => (process.stdin.isTTY ? typedSecret(prompt) : Promise.resolve(firstLine(readFileSync(0, 'utf8')))),
};

export const firstLine = (text: string): string => text.split(/\r?\n/)[0] ?? '';

/** Reads a line at the terminal with echo off: Enter ends it, Backspace takes back, Ctrl-C stops (exit 130). */
function typedSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // Echo off before the prompt: what is typed the moment it shows must not appear.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  stdin.resume();
  return new Promise((resolve) => {
    let typed = '';
    const done = () => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      resolve(typed);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          process.stderr.write('\n');
          process.exit(130);
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else if (ch >= ' ') typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}

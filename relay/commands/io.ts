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
}

export const processIo: CommandIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
  stdin: () => readFileSync(0, 'utf8'),
};

// A process-wide trick, said as such: it asks V8 for young-generation collections while a large message
// streams through, for the whole process. Each socket read and file read of a streamed message is a fresh
// Buffer, and each stage that transforms it (unstuffing, line-ending checks, dot-stuffing on the way out)
// makes another; V8 frees them only when it collects garbage, which their bytes (outside its heap) hasten
// only after tens of megabytes. Relaying one 50 MB message raised RSS by ~35 MB, nearly all of it dead
// chunks. So the code that streams a large message counts its bytes here, and every 4 MiB a
// young-generation collection (well under a millisecond) frees the chunks behind it.
import v8 from 'node:v8';
import vm from 'node:vm';

const EVERY_BYTES = 4 * 1024 * 1024;

type Collect = (options: { type: 'minor' | 'major' }) => void;
let collect: Collect | undefined;
let sinceLast = 0;

export function releaseChunks(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < EVERY_BYTES) return;
  sinceLast = 0;
  if (!collect) {
    // gc() without starting node with --expose-gc: the flag, then the function from a fresh context.
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as Collect;
  }
  collect({ type: 'minor' });
}

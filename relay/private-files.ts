// Everything the relay writes holds mail or who sent it to whom: folders 0700 and files 0600, whatever the
// umask it was started with (as Postfix keeps its queue). Each place that creates a file or folder passes
// these modes; a spool left by an earlier version or another umask is tightened when the relay starts.
import fs from 'node:fs/promises';

export const PRIVATE_DIR = 0o700;
export const PRIVATE_FILE = 0o600;

/**
 * Takes away group and other access from `root` and everything under it; returns how many entries were
 * changed. Symbolic links are left alone (chmod would follow them out of the spool).
 */
export async function tightenTree(root: string): Promise<number> {
  let changed = 0;
  const visit = async (file: string): Promise<void> => {
    let stat;
    try {
      stat = await fs.lstat(file);
    } catch {
      return;
    }
    if (stat.isSymbolicLink()) return;
    if ((stat.mode & 0o077) !== 0) {
      // The owner keeps what it had (a folder is always searchable by it); nobody else keeps anything.
      await fs.chmod(file, stat.isDirectory() ? PRIVATE_DIR : stat.mode & 0o700).catch(() => {});
      changed++;
    }
    if (!stat.isDirectory()) return;
    const names = await fs.readdir(file).catch(() => [] as string[]);
    // A backlog of 100,000 files: a few at a time, not all at once, not one by one.
    for (let i = 0; i < names.length; i += 64) await Promise.all(names.slice(i, i + 64).map((n) => visit(`${file}/${n}`)));
  };
  await visit(root);
  return changed;
}

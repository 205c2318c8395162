// Waiting on an event a test stands for, not a fixed sleep: bounded in time, it says whether it came.
/** Resolves true once `done()` holds (looked at every 20 ms), false after `ms`. */
export async function until(done: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

// Which events a full outbox gives up: single events, from the tenants that hold the most of the backlog,
// so one chatty tenant loses its own and not everyone's.

/** The tenant an event is about ("" for mail of no tenant), or undefined for a line that is not an event. */
export function tenantOf(text: string): string | undefined {
  try {
    const value = JSON.parse(text) as { tenant?: unknown };
    return value && typeof value === 'object' ? (typeof value.tenant === 'string' ? value.tenant : '') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How many events each tenant gives up so that `count` go in all: always from the tenant holding the most
 * (water-filling), so the backlog's largest holders are cut down to the others' level first.
 */
export function fairDrops(tenants: readonly string[], count: number): Map<string, number> {
  const held = new Map<string, number>();
  for (const t of tenants) held.set(t, (held.get(t) ?? 0) + 1);
  const drops = new Map<string, number>();
  if (count <= 0) return drops;
  const sorted = [...held].sort((a, b) => b[1] - a[1]);
  let left = Math.min(count, tenants.length);
  // Lower the level step by step: every tenant above the next level down gives up what is above it.
  for (let i = 0; i < sorted.length && left > 0; i++) {
    const level = sorted[i + 1]?.[1] ?? 0;
    const above = sorted.slice(0, i + 1);
    const room = above.reduce((n, [, c]) => n + (c - level), 0);
    if (room < left) {
      for (const entry of above) entry[1] = level;
      left -= room;
      continue;
    }
    // The last step: take what is left evenly from those above, the largest first for the remainder.
    const each = Math.floor(left / above.length);
    let extra = left - each * above.length;
    for (const entry of above) {
      const from = entry[1];
      entry[1] = Math.max(level, from - each - (extra > 0 ? 1 : 0));
      if (extra > 0) extra--;
    }
    left = 0;
  }
  for (const [tenant, now] of sorted) {
    const gone = (held.get(tenant) ?? 0) - now;
    if (gone > 0) drops.set(tenant, gone);
  }
  return drops;
}


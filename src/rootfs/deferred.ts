// Which of a spec's mounts the setup thread makes, and which wait for the main thread:
// procfs must show the container's PID namespace, which exists only once its PID 1 does
// (finish.ts). Shared by both threads' bundles, so it stays this small.
import type { MountSpec } from '../spec/types.js';

export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : dir + '/');
}

/** Per mount: whether it waits for the main thread (a proc mount, or under one that does). */
export function deferredMounts(mounts: MountSpec[]): boolean[] {
  const dests: string[] = [];
  return mounts.map((m) => {
    const later = m.type === 'proc' || dests.some((d) => isUnder(m.destination, d));
    if (later) dests.push(m.destination);
    return later;
  });
}

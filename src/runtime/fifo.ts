import type { Kernel } from '../linux/kernel.js';

/** The start gate. Mode 0644: the waiting process (maybe non-root) opens it for reading; only root can open it for writing. */
export function mkfifoSync(k: Kernel, path: string): void {
  k.mkfifo(path, 0o644);
}

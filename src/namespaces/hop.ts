// The main thread's short visits into a container's namespaces: to attach /proc, to
// apply masked paths, to run the hooks that the runtime-spec says run "in the container
// namespace". Every visit restores what it changed, even when `fn` throws: the main
// thread must always come back to the host's view.
import { CLONE, O } from '../linux/constants.js';
import type { Kernel } from '../linux/kernel.js';
import type { NamespaceType } from '../spec/types.js';
import { NS_FILE, NS_FLAG } from './index.js';

let fsUnshared = false;

/**
 * Runs `fn` with the calling thread in the given namespaces of process `pid`. For `pid`
 * that means its *children* start inside (setns(CLONE_NEWPID) never moves the caller);
 * for `mount`, / and the cwd become the container's root until the end.
 */
export function withNamespacesOf<T>(k: Kernel, pid: number, types: NamespaceType[], fn: () => T): T {
  const hasMount = types.includes('mount');
  if (hasMount && !fsUnshared) {
    // setns(CLONE_NEWNS) refuses a thread that shares its fs_struct (root, cwd, umask)
    // with other threads, and every Node thread does. This copies ours.
    k.unshare(CLONE.CLONE_FS, 'give the main thread its own root and cwd, so it may enter the container\'s mount namespace and come back');
    fsUnshared = true;
  }
  // Mount last in, first out: once inside it, /proc/... paths mean the container's.
  const order = [...types.filter((t) => t !== 'mount'), ...(hasMount ? ['mount' as const] : [])];
  const opened: Array<{ type: NamespaceType; back: number; target: number }> = [];
  let cwd = -1;
  try {
    for (const type of order) {
      const self = type === 'pid' ? 'pid_for_children' : NS_FILE[type];
      const back = k.open(`/proc/thread-self/ns/${self}`, O.O_RDONLY | O.O_CLOEXEC, 0, `remember the host ${type} namespace to come back to`);
      const target = k.open(`/proc/${pid}/ns/${NS_FILE[type]}`, O.O_RDONLY | O.O_CLOEXEC, 0, `the container's ${type} namespace`);
      opened.push({ type, back, target });
    }
    if (hasMount) cwd = k.open('.', O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, 'remember the cwd');
    const entered: typeof opened = [];
    try {
      for (const o of opened) {
        k.setns(o.target, NS_FLAG[o.type], o.type === 'mount' ? 'enter the container\'s mount namespace: / is now its rootfs' : o.type === 'pid' ? 'children of the main thread now start inside the container\'s PID namespace' : `enter the container's ${o.type} namespace`);
        entered.push(o);
      }
      return fn();
    } finally {
      for (const o of entered.reverse()) {
        k.setns(o.back, NS_FLAG[o.type], `return to the host ${o.type} namespace`);
        if (o.type === 'mount') k.fchdir(cwd, 'restore the cwd');
      }
    }
  } finally {
    if (cwd >= 0) k.close(cwd);
    for (const o of opened) {
      k.close(o.target);
      k.close(o.back);
    }
  }
}

// Entering the container's namespaces on the setup thread. Namespaces belong to a
// thread, not a process: unshare() and setns() here move only the setup thread, and
// the container process inherits them when that thread spawns it. tsrun's main thread
// stays in the host's namespaces throughout.
import { CLONE, O } from '../linux/constants.js';
import type { Kernel } from '../linux/kernel.js';
import type { NamespaceType, Spec } from '../spec/types.js';
import { TsrunError } from '../errors.js';

export const NS_FLAG: Record<NamespaceType, number> = {
  pid: CLONE.CLONE_NEWPID,
  network: CLONE.CLONE_NEWNET,
  mount: CLONE.CLONE_NEWNS,
  ipc: CLONE.CLONE_NEWIPC,
  uts: CLONE.CLONE_NEWUTS,
  user: CLONE.CLONE_NEWUSER,
  cgroup: CLONE.CLONE_NEWCGROUP,
  time: CLONE.CLONE_NEWTIME,
};

/** The /proc/PID/ns/ file name of each type. */
export const NS_FILE: Record<NamespaceType, string> = {
  pid: 'pid', network: 'net', mount: 'mnt', ipc: 'ipc', uts: 'uts', user: 'user', cgroup: 'cgroup', time: 'time',
};

const WHY_NEW: Record<NamespaceType, string> = {
  pid: 'PID: the container\'s first process will be PID 1 and see only its own descendants',
  network: 'network: its own interfaces, routes and ports (only lo until a network is attached)',
  mount: 'mount: its own mount table, so mounts made for it never appear on the host',
  ipc: 'IPC: its own System V IPC objects and POSIX message queues',
  uts: 'UTS: its own hostname',
  user: 'user',
  cgroup: 'cgroup: /proc/self/cgroup and /sys/fs/cgroup show its own cgroup as the root',
  time: 'time: its own monotonic and boot-time clocks',
};

export interface NamespacePlan {
  fresh: NamespaceType[];
  join: Array<{ type: NamespaceType; path: string }>;
}

export function planNamespaces(spec: Spec): NamespacePlan {
  const plan: NamespacePlan = { fresh: [], join: [] };
  for (const ns of spec.linux?.namespaces ?? []) {
    if (ns.type === 'user') {
      throw new TsrunError('KERNEL_FEATURE', 'user namespaces are not supported yet: unshare(CLONE_NEWUSER) fails in a multi-threaded process, and Node always is one', {
        hint: 'remove the "user" namespace from linux.namespaces (tsrun runs containers as real root)',
      });
    }
    if (ns.path) plan.join.push({ type: ns.type, path: ns.path });
    else plan.fresh.push(ns.type);
  }
  return plan;
}

/** Joins, then creates, the namespaces in the plan. Must run on the setup thread. */
export function enterNamespaces(k: Kernel, plan: NamespacePlan): void {
  // setns(CLONE_NEWNS) and unshare(CLONE_NEWNS) both need a private fs_struct.
  k.unshare(CLONE.CLONE_FS, 'give the setup thread its own root, cwd and umask, shared with no other thread of tsrun');
  // Open every namespace to join first: the paths are host paths, and joining a mount
  // namespace changes what paths mean.
  const fds = plan.join.map((j) => {
    try {
      return { ...j, fd: k.open(j.path, O.O_RDONLY | O.O_CLOEXEC, 0, `the ${j.type} namespace to join`) };
    } catch (e) {
      throw new TsrunError('SPEC_INVALID', `linux.namespaces: cannot open ${j.type} namespace path "${j.path}": ${(e as Error).message}`, { cause: e });
    }
  });
  // Join the mount namespace last, for the same reason.
  fds.sort((a, b) => Number(a.type === 'mount') - Number(b.type === 'mount'));
  try {
    for (const j of fds) k.setns(j.fd, NS_FLAG[j.type], `join the ${j.type} namespace at ${j.path}`);
  } finally {
    for (const j of fds) k.close(j.fd);
  }
  for (const t of plan.fresh) k.unshare(NS_FLAG[t], `new ${WHY_NEW[t]}`);
}

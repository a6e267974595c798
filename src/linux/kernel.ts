// The kernel interface that every part of the runtime core goes through.
// `LinuxKernel` (libc.ts) makes the real calls through koffi; `RecordingKernel`
// (recording.ts) records them so unit tests can check which calls a step would make,
// without root. Each method takes an optional `why` that the trace prints; without
// one, the trace uses the wrapper's default explanation from SYSCALL_DOCS.
import { errnoMessage, errnoName } from './errno.js';

export interface SpawnStdio {
  /** child fd -> source: a parent fd number, a path opened in the child, or 'pty' */
  fd: number;
  from: { parentFd: number } | { path: string; flags: number };
}

export interface SpawnRequest {
  path: string;
  argv: string[];
  env: string[];
  /** working directory, resolved in the child's root */
  cwd: string;
  /** The gate: the child opens this path (a FIFO reached through /proc/self/fd) and blocks there until the parent opens it for writing. */
  gatePath?: string;
  /** a new session; with `ctty`, the path of the terminal to make controlling */
  setsid: boolean;
  /** the terminal that becomes the child's controlling tty and its stdin, stdout and stderr (`stdio` is then unused) */
  ctty?: string;
  stdio: SpawnStdio[];
  /** fds 3..3+n-1 stay open in the child (runc's --preserve-fds) */
  preserveFds: number;
}

export interface WaitResult {
  pid: number;
  /** exit code, or null when killed by a signal */
  code: number | null;
  signal: number | null;
}

export type CapSets = { effective: bigint; permitted: bigint; inheritable: bigint };

export interface Kernel {
  unshare(flags: number, why?: string): void;
  setns(fd: number, nstype: number, why?: string): void;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, why?: string): void;
  umount2(target: string, flags: number, why?: string): void;
  pivotRoot(newRoot: string, putOld: string, why?: string): void;
  chdir(path: string, why?: string): void;
  chroot(path: string, why?: string): void;
  /** socket(2); a socket belongs to the network namespace of the thread that makes it */
  socket(domain: number, type: number, protocol: number, why?: string): number;
  fchdir(fd: number, why?: string): void;
  sethostname(name: string, why?: string): void;
  setdomainname(name: string, why?: string): void;
  open(path: string, flags: number, mode?: number, why?: string): number;
  /** openat2(2) with RESOLVE_* flags: the safe way to resolve a path inside a root */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number, why?: string): number;
  close(fd: number): void;
  mkdirat(dirfd: number, path: string, mode: number, why?: string): void;
  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number, why?: string): void;
  symlinkat(target: string, dirfd: number, path: string, why?: string): void;
  /** fchownat(dirfd, path, uid, gid, AT_SYMLINK_NOFOLLOW): never follows a symlink at the last component */
  fchownat(dirfd: number, path: string, uid: number, gid: number, why?: string): void;
  mkfifo(path: string, mode: number, why?: string): void;
  prctl(option: number, arg2: number, arg3?: number, why?: string): number;
  capget(): CapSets;
  capset(sets: CapSets, why?: string): void;
  setresuid(r: number, e: number, s: number, why?: string): void;
  setresgid(r: number, e: number, s: number, why?: string): void;
  setgroups(gids: number[], why?: string): void;
  prlimit(pid: number, resource: number, soft: bigint, hard: bigint, why?: string): void;
  seccompSetFilter(program: Buffer, flags: number, why?: string): void;
  fcntl(fd: number, cmd: number, arg: number): number;
  closeRange(first: number, last: number, flags: number, why?: string): void;
  ioctl(fd: number, request: number, arg: Buffer | number, why?: string): number;
  kill(pid: number, signal: number, why?: string): void;
  /** waitid(P_PID, pid, WEXITED|options) */
  wait(pid: number, nohang: boolean): WaitResult | null;
  /** posix_spawn(3) from the calling thread, which is blocked until the child calls execve */
  spawn(req: SpawnRequest, why?: string): number;
  /** a write to a kernel file (cgroupfs, procfs); traced as a cgroup/proc write */
  writeFile(path: string, data: string, why?: string): void;
  gettid(): number;
  /** _exit(2): end the process now, without Node's exit path (which would wait for a worker blocked in posix_spawn) */
  exitNow(code: number): never;
  /** connect to a unix socket and send one fd with SCM_RIGHTS (runc's --console-socket) */
  sendFd(socketPath: string, fd: number, why?: string): void;
  umask(mask: number): number;
  /** the new mount API: a filesystem context, configured, then made into a detached mount */
  fsopen(fstype: string, why?: string): number;
  fsconfigString(fsfd: number, key: string, value: string | null, why?: string): void;
  fsconfigCreate(fsfd: number, why?: string): void;
  fsmount(fsfd: number, attrFlags: number, why?: string): number;
  /** move_mount(fd, "", AT_FDCWD or dirfd, path, MOVE_MOUNT_F_EMPTY_PATH[|T_EMPTY_PATH]) */
  moveMount(fromFd: number, toDirfd: number, toPath: string, why?: string): void;
  /** open_tree(dirfd, path, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC[|AT_RECURSIVE]): a detached copy of a mount, i.e. a bind mount not yet attached */
  openTree(path: string, recursive: boolean, why?: string): number;
  /** fstat(2) on an fd, reduced to what callers branch on (a bind source: directory or file) */
  statFd(fd: number): 'dir' | 'file' | 'other';
  /** setxattr(2): follows a symlink at the last component (a /proc/self/fd/N path reaches the fd's file) */
  setxattr(path: string, name: string, value: Buffer, flags: number, why?: string): void;
  /** lsetxattr(2): sets the attribute on a symlink itself, never on what it points to */
  lsetxattr(path: string, name: string, value: Buffer, flags: number, why?: string): void;
  /**
   * bpf(BPF_PROG_LOAD): loads an eBPF program (encoded struct bpf_insn array) and returns
   * its fd. On failure it loads once more with a log buffer, and the KernelError carries
   * the verifier's log.
   */
  bpfProgLoad(progType: number, insns: Buffer, license: string, why?: string): number;
  /** bpf(BPF_PROG_ATTACH): attaches a loaded program to a target fd (a cgroup directory) */
  bpfProgAttach(targetFd: number, progFd: number, attachType: number, flags: number, why?: string): void;
  /** pidfd_open(pid, 0) (Linux 5.3+): a descriptor for a process that cannot be confused with a later owner of its pid */
  pidfdOpen(pid: number, why?: string): number;
  /** pidfd_getfd(pidfd, targetfd, 0) (Linux 5.6+): a copy (close-on-exec) of another process's descriptor; needs ptrace access to it */
  pidfdGetfd(pidfd: number, targetFd: number, why?: string): number;
  /** pipe2(O_CLOEXEC): [read end, write end]; an anonymous pipe names no host path, unlike a FIFO */
  pipe(why?: string): [number, number];
}

/** The default "why" of every wrapper. A test checks that each Kernel method has one. */
export const SYSCALL_DOCS: Record<string, string> = {
  unshare: 'give the calling thread new namespaces, so what it does next is invisible to the host',
  setns: 'join an existing namespace of another container or of the host',
  mount: 'attach a filesystem (or change a mount\'s flags) in the container\'s own mount namespace',
  umount2: 'detach a mount; MNT_DETACH drops it once nothing uses it',
  pivot_root: 'make the rootfs `/` and move the host\'s root aside, so it can be detached and never reached again',
  chdir: 'change the working directory of the setup thread',
  chroot: 'change the root directory of the calling thread',
  socket: 'open a socket, in the network namespace of the calling thread',
  fchdir: 'change directory through an fd, so no path can be swapped under us',
  sethostname: 'set the hostname inside the new UTS namespace; the host keeps its own',
  setdomainname: 'set the NIS domain name inside the new UTS namespace',
  open: 'open a file or directory',
  openat2: 'resolve a path inside the rootfs with RESOLVE_IN_ROOT, so a symlink cannot lead out of it',
  close: 'close a descriptor so it cannot leak into the container',
  mkdirat: 'create a directory inside the rootfs, relative to a directory fd',
  mknodat: 'create a device node (a char device is how the kernel names /dev/null and friends)',
  symlinkat: 'create a symlink inside the rootfs',
  fchownat: 'set the owner of a file inside the rootfs, relative to a directory fd, without following a symlink',
  mkfifo: 'create the start gate: the container process blocks opening it until tsrun says go',
  prctl: 'set a per-thread process attribute (no_new_privs, the bounding set, keepcaps, dumpable)',
  capget: 'read the thread\'s capability sets',
  capset: 'set the effective, permitted and inheritable capability sets the container keeps',
  setresuid: 'switch to the container user (raw syscall: glibc would change every thread of tsrun)',
  setresgid: 'switch to the container group (raw syscall: only this thread)',
  setgroups: 'set the supplementary groups of the container user',
  prlimit: 'set a resource limit (ulimit) of the container process before it runs',
  seccomp: 'install the seccomp filter: the last step before execve, so it also filters the container',
  fcntl: 'change descriptor flags',
  close_range: 'mark every descriptor close-on-exec so no host fd reaches the container (CVE-2024-21626)',
  ioctl: 'control a terminal: window size, pty number and lock',
  kill: 'send a signal to a process',
  waitid: 'reap an exited child and read its status',
  posix_spawn: 'start the container process: a C-only child (no JavaScript after fork) that inherits this thread\'s namespaces, root and credentials, then execve()s the command',
  write: 'write a kernel setting file',
  gettid: 'read the thread id',
  _exit: 'leave at once; the container process stays behind, blocked at its start gate',
  sendmsg: 'send the pty master to whoever listens on the console socket (SCM_RIGHTS), as conmon and containerd expect',
  umask: 'set the file mode creation mask the container starts with',
  fsopen: 'start a filesystem context (new mount API), so options can be set before the mount exists',
  fsconfig: 'set an option on a filesystem context; pidns= ties a procfs to the container\'s PID namespace',
  fsmount: 'turn a configured filesystem context into a detached mount, not yet visible anywhere',
  move_mount: 'attach a detached mount at its place inside the container',
  open_tree: 'clone a host path as a detached bind mount, to be attached inside the container',
  fstat: 'read what an fd refers to (a bind mount lands on a directory or on a file)',
  setxattr: 'set an extended attribute (overlayfs reads trusted.overlay.opaque; file capabilities live in security.capability)',
  lsetxattr: 'set an extended attribute on a path without following a symlink at its end',
  bpf: 'load or attach an eBPF program (the cgroup v2 device filter)',
  pipe2: 'make an anonymous pipe',
  pidfd_open: 'get a descriptor for a process, so a reused pid cannot be mistaken for it',
  pidfd_getfd: 'copy a descriptor out of another process (a -dt container\'s pty master, kept by its holder while no monitor ran)',
};

/** Maps each Kernel method to the syscall name it documents under. */
export const KERNEL_METHOD_SYSCALL: Record<keyof Kernel, string> = {
  unshare: 'unshare', setns: 'setns', mount: 'mount', umount2: 'umount2', pivotRoot: 'pivot_root',
  chdir: 'chdir', chroot: 'chroot', socket: 'socket', fchdir: 'fchdir', sethostname: 'sethostname', setdomainname: 'setdomainname',
  open: 'open', openat2: 'openat2', close: 'close', mkdirat: 'mkdirat', mknodat: 'mknodat',
  symlinkat: 'symlinkat', fchownat: 'fchownat', mkfifo: 'mkfifo', prctl: 'prctl',
  capget: 'capget', capset: 'capset', setresuid: 'setresuid', setresgid: 'setresgid',
  setgroups: 'setgroups', prlimit: 'prlimit', seccompSetFilter: 'seccomp', fcntl: 'fcntl',
  closeRange: 'close_range', ioctl: 'ioctl', kill: 'kill', wait: 'waitid', spawn: 'posix_spawn',
  writeFile: 'write', gettid: 'gettid', exitNow: '_exit', sendFd: 'sendmsg', umask: 'umask', fsopen: 'fsopen', fsconfigString: 'fsconfig',
  fsconfigCreate: 'fsconfig', fsmount: 'fsmount', moveMount: 'move_mount', openTree: 'open_tree',
  statFd: 'fstat', setxattr: 'setxattr', lsetxattr: 'lsetxattr', bpfProgLoad: 'bpf', bpfProgAttach: 'bpf',
  pidfdOpen: 'pidfd_open', pidfdGetfd: 'pidfd_getfd', pipe: 'pipe2',
};

/** A failed kernel call: the syscall, the errno by name, and what it was called on. */
export class KernelError extends Error {
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    readonly detail: string,
  ) {
    const name = errnoName(errno);
    super(`${syscall}(${detail}): ${name} (${errnoMessage(errno)})`);
    this.name = 'KernelError';
    this.code = name;
  }
}

export function quote(s: string | null): string {
  return s === null ? 'NULL' : JSON.stringify(s);
}

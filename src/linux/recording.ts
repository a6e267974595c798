// A test double of the Kernel: it makes no system call, records every call in order,
// and answers with fake descriptors and preset results, so unit tests can check which
// calls a step would make, without root (the idea of youki's syscall test double).
// Failures are injected as the same KernelError the real kernel throws, so the code
// under test takes its real error paths.
import { posix } from 'node:path';
import { ENOENT, EEXIST } from './errno.js';
import { O, RESOLVE } from './constants.js';
import {
  type CapSets, type Kernel, type SpawnRequest, type WaitResult, KERNEL_METHOD_SYSCALL, KernelError, quote,
} from './kernel.js';

export type KernelMethod = keyof Kernel;

export interface RecordedCall {
  method: KernelMethod;
  /** the arguments, without `why` */
  args: unknown[];
  why?: string;
  /** the errno name when the call was made to fail */
  error?: string;
}

/**
 * Where each method takes its `why` (an index into its arguments), or null when it has
 * none. Typed over every Kernel method: adding a method to the interface without
 * teaching the recorder about it is a compile error here.
 */
export const WHY_INDEX: Record<KernelMethod, number | null> = {
  unshare: 1, setns: 2, mount: 5, umount2: 2, pivotRoot: 2, chdir: 1, chroot: 1, socket: 3, fchdir: 1, sethostname: 1,
  setdomainname: 1, open: 3, openat2: 5, close: null, mkdirat: 3, mknodat: 5, symlinkat: 3, fchownat: 4,
  mkfifo: 2, prctl: 3, capget: null, capset: 1, setresuid: 3, setresgid: 3, setgroups: 1,
  prlimit: 4, seccompSetFilter: 2, fcntl: null, closeRange: 3, ioctl: 3, kill: 2, wait: null, spawn: 1,
  writeFile: 2, gettid: null, exitNow: null, sendFd: 2, umask: null, fsopen: 1, fsconfigString: 3, fsconfigCreate: 1, fsmount: 2,
  moveMount: 3, openTree: 2, statFd: null, setxattr: 4, lsetxattr: 4, bpfProgLoad: 3, bpfProgAttach: 4,
  pidfdOpen: 1, pidfdGetfd: 2, pipe: 0,
};

interface Failure {
  method: KernelMethod;
  errno: number;
  predicate?: (args: unknown[]) => boolean;
  /** how many more times it fires; Infinity by default */
  remaining: number;
}

type FileKind = 'dir' | 'file' | 'other';

/** What RecordingKernel.exitNow throws in place of ending the process. */
export class ExitCalled extends Error {
  constructor(readonly code: number) {
    super(`_exit(${code})`);
    this.name = 'ExitCalled';
  }
}

/** Quoted strings, JSON for the rest: enough for the message of an injected failure. */
function render(args: unknown[]): string {
  return args
    .map((a) => (typeof a === 'string' || a === null ? quote(a) : Buffer.isBuffer(a) ? `<${a.length} bytes>` : typeof a === 'bigint' ? a.toString() : JSON.stringify(a)))
    .join(', ');
}

export class RecordingKernel implements Kernel {
  readonly calls: RecordedCall[] = [];
  /** what writeFile wrote, in order */
  readonly writes: Array<{ path: string; data: string }> = [];
  /** fake pid returned by spawn; increases with each spawn */
  nextPid = 4242;
  /** what wait() returns; null means "still running" (WNOHANG) */
  waitResult: WaitResult | null = { pid: 4242, code: 0, signal: null };
  /** what capget answers: a root thread holds every capability (0..40) */
  capSets: CapSets = { effective: (1n << 41n) - 1n, permitted: (1n << 41n) - 1n, inheritable: 0n };
  /** what statFd says about an fd opened with open(path), by path; 'dir' otherwise */
  readonly kinds = new Map<string, FileKind>();

  private nextFd = 100;
  private mask = 0o022;
  private readonly failures: Failure[] = [];
  /** open fd -> the path it names: a host path (open) or a path inside the root (openat2) */
  private readonly fds = new Map<number, { path: string; inRoot: boolean }>();
  /** every fd ever handed out (they are never reused), for asserting on closed ones too */
  private readonly history = new Map<number, string>();
  /** null: every path exists; otherwise the paths (inside the root) that exist */
  private existing: Set<string> | null = null;

  /**
   * From now on, only these paths (and their parents) exist for openat2; anything
   * else fails with ENOENT until mkdirat/mknodat/symlinkat/O_CREAT creates it.
   */
  presetExisting(paths: string[]): this {
    this.existing = new Set(['/']);
    for (const p of paths) this.addExisting(p);
    return this;
  }

  /** Makes the next matching calls of `method` throw KernelError(errno) (all of them unless `times`). */
  failOn(method: KernelMethod, errno: number, predicate?: (args: unknown[]) => boolean, times = Infinity): this {
    this.failures.push({ method, errno, predicate, remaining: times });
    return this;
  }

  /** Descriptors handed out and not closed yet. */
  openFds(): number[] {
    return [...this.fds.keys()];
  }

  /** The path a fake fd stands for (also after it was closed). */
  pathOf(fd: number): string | undefined {
    return this.history.get(fd);
  }

  /** The path behind /proc/thread-self/fd/N, or the string itself for any other path. */
  resolveFdPath(p: string | null): string | null {
    const m = p === null ? null : /^\/proc\/(?:thread-)?self\/fd\/(\d+)$/.exec(p);
    return m ? this.pathOf(Number(m[1])) ?? p : p;
  }

  methods(): KernelMethod[] {
    return this.calls.map((c) => c.method);
  }

  callsOf(method: KernelMethod): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Index of the first call matching, or -1. */
  indexOf(method: KernelMethod, pred: (args: unknown[]) => boolean = () => true, from = 0): number {
    for (let i = from; i < this.calls.length; i++) {
      const c = this.calls[i]!;
      if (c.method === method && pred(c.args)) return i;
    }
    return -1;
  }

  private addExisting(p: string): void {
    if (!this.existing) return;
    let cur = posix.resolve('/', p);
    while (!this.existing.has(cur)) {
      this.existing.add(cur);
      cur = posix.dirname(cur);
    }
  }

  /** Records the call, then throws if a failure was armed for it. */
  private rec(method: KernelMethod, all: unknown[]): void {
    const wi = WHY_INDEX[method];
    const args = wi === null ? all : all.slice(0, wi);
    const why = wi === null ? undefined : (all[wi] as string | undefined);
    const call: RecordedCall = why === undefined ? { method, args } : { method, args, why };
    this.calls.push(call);
    const f = this.failures.find((x) => x.method === method && x.remaining > 0 && (!x.predicate || x.predicate(args)));
    if (f) {
      f.remaining--;
      this.throwErrno(call, f.errno);
    }
  }

  private throwErrno(call: RecordedCall, errno: number): never {
    const err = new KernelError(KERNEL_METHOD_SYSCALL[call.method], errno, render(call.args));
    call.error = err.code;
    throw err;
  }

  private fd(path: string, inRoot: boolean): number {
    const fd = this.nextFd++;
    this.fds.set(fd, { path, inRoot });
    this.history.set(fd, path);
    return fd;
  }

  /** The path inside the root that openat2(dirfd, path) names: dirfd is the root unless it came from openat2. */
  private inRoot(dirfd: number, path: string): string {
    const base = this.fds.get(dirfd);
    return posix.resolve(base?.inRoot ? base.path : '/', path);
  }

  unshare(flags: number, why?: string): void { this.rec('unshare', [flags, why]); }
  setns(fd: number, nstype: number, why?: string): void { this.rec('setns', [fd, nstype, why]); }
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, why?: string): void {
    this.rec('mount', [source, target, fstype, flags, data, why]);
  }
  umount2(target: string, flags: number, why?: string): void { this.rec('umount2', [target, flags, why]); }
  pivotRoot(newRoot: string, putOld: string, why?: string): void { this.rec('pivotRoot', [newRoot, putOld, why]); }
  chdir(path: string, why?: string): void { this.rec('chdir', [path, why]); }
  chroot(path: string, why?: string): void { this.rec('chroot', [path, why]); }
  socket(domain: number, type: number, protocol: number, why?: string): number {
    this.rec('socket', [domain, type, protocol, why]);
    return this.fd(`socket:${domain}`, false);
  }
  fchdir(fd: number, why?: string): void { this.rec('fchdir', [fd, why]); }
  sethostname(name: string, why?: string): void { this.rec('sethostname', [name, why]); }
  setdomainname(name: string, why?: string): void { this.rec('setdomainname', [name, why]); }

  open(path: string, flags: number, mode = 0, why?: string): number {
    this.rec('open', [path, flags, mode, why]);
    return this.fd(path, false);
  }

  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number, why?: string): number {
    this.rec('openat2', [dirfd, path, flags, mode, resolve, why]);
    const full = (resolve & RESOLVE.RESOLVE_IN_ROOT) !== 0 || this.fds.get(dirfd)?.inRoot ? this.inRoot(dirfd, path) : path;
    if (this.existing) {
      const exists = this.existing.has(full);
      const call = this.calls[this.calls.length - 1]!;
      if (!exists && !(flags & O.O_CREAT)) this.throwErrno(call, ENOENT);
      if (exists && flags & O.O_CREAT && flags & O.O_EXCL) this.throwErrno(call, EEXIST);
      this.addExisting(full);
    }
    return this.fd(full, true);
  }

  close(fd: number): void {
    this.rec('close', [fd]);
    this.fds.delete(fd);
  }

  private create(method: KernelMethod, all: unknown[], dirfd: number, path: string): void {
    this.rec(method, all);
    const full = this.inRoot(dirfd, path);
    if (this.existing?.has(full)) this.throwErrno(this.calls[this.calls.length - 1]!, EEXIST);
    this.addExisting(full);
  }

  mkdirat(dirfd: number, path: string, mode: number, why?: string): void { this.create('mkdirat', [dirfd, path, mode, why], dirfd, path); }
  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number, why?: string): void {
    this.create('mknodat', [dirfd, path, mode, major, minor, why], dirfd, path);
  }
  symlinkat(target: string, dirfd: number, path: string, why?: string): void { this.create('symlinkat', [target, dirfd, path, why], dirfd, path); }
  fchownat(dirfd: number, path: string, uid: number, gid: number, why?: string): void { this.rec('fchownat', [dirfd, path, uid, gid, why]); }
  mkfifo(path: string, mode: number, why?: string): void { this.rec('mkfifo', [path, mode, why]); }
  prctl(option: number, arg2: number, arg3 = 0, why?: string): number {
    this.rec('prctl', [option, arg2, arg3, why]);
    return 0;
  }
  capget(): CapSets {
    this.rec('capget', []);
    return { ...this.capSets };
  }
  capset(sets: CapSets, why?: string): void { this.rec('capset', [{ ...sets }, why]); }
  setresuid(r: number, e: number, s: number, why?: string): void { this.rec('setresuid', [r, e, s, why]); }
  setresgid(r: number, e: number, s: number, why?: string): void { this.rec('setresgid', [r, e, s, why]); }
  setgroups(gids: number[], why?: string): void { this.rec('setgroups', [[...gids], why]); }
  prlimit(pid: number, resource: number, soft: bigint, hard: bigint, why?: string): void { this.rec('prlimit', [pid, resource, soft, hard, why]); }
  seccompSetFilter(program: Buffer, flags: number, why?: string): void { this.rec('seccompSetFilter', [program, flags, why]); }
  fcntl(fd: number, cmd: number, arg: number): number {
    this.rec('fcntl', [fd, cmd, arg]);
    return 0;
  }
  closeRange(first: number, last: number, flags: number, why?: string): void { this.rec('closeRange', [first, last, flags, why]); }
  ioctl(fd: number, request: number, arg: Buffer | number, why?: string): number {
    this.rec('ioctl', [fd, request, arg, why]);
    return 0;
  }
  kill(pid: number, signal: number, why?: string): void { this.rec('kill', [pid, signal, why]); }
  wait(pid: number, nohang: boolean): WaitResult | null {
    this.rec('wait', [pid, nohang]);
    return this.waitResult && { ...this.waitResult };
  }
  spawn(req: SpawnRequest, why?: string): number {
    this.rec('spawn', [req, why]);
    return this.nextPid++;
  }
  writeFile(path: string, data: string, why?: string): void {
    this.rec('writeFile', [path, data, why]);
    this.writes.push({ path, data });
  }
  gettid(): number {
    this.rec('gettid', []);
    return 4000;
  }
  /** Cannot end the test run: records, then throws an ExitCalled the test can catch. */
  exitNow(code: number): never {
    this.rec('exitNow', [code]);
    throw new ExitCalled(code);
  }
  sendFd(socketPath: string, fd: number, why?: string): void { this.rec('sendFd', [socketPath, fd, why]); }
  umask(mask: number): number {
    this.rec('umask', [mask]);
    const old = this.mask;
    this.mask = mask;
    return old;
  }
  fsopen(fstype: string, why?: string): number {
    this.rec('fsopen', [fstype, why]);
    return this.fd(`fs:${fstype}`, false);
  }
  fsconfigString(fsfd: number, key: string, value: string | null, why?: string): void { this.rec('fsconfigString', [fsfd, key, value, why]); }
  fsconfigCreate(fsfd: number, why?: string): void { this.rec('fsconfigCreate', [fsfd, why]); }
  fsmount(fsfd: number, attrFlags: number, why?: string): number {
    this.rec('fsmount', [fsfd, attrFlags, why]);
    return this.fd(`mnt:${this.pathOf(fsfd) ?? fsfd}`, false);
  }
  moveMount(fromFd: number, toDirfd: number, toPath: string, why?: string): void { this.rec('moveMount', [fromFd, toDirfd, toPath, why]); }
  openTree(path: string, recursive: boolean, why?: string): number {
    this.rec('openTree', [path, recursive, why]);
    return this.fd(path, false);
  }
  pipe(why?: string): [number, number] {
    this.rec('pipe', [why]);
    return [this.fd('pipe:r', false), this.fd('pipe:w', false)];
  }
  pidfdOpen(pid: number, why?: string): number {
    this.rec('pidfdOpen', [pid, why]);
    return this.fd(`pidfd:${pid}`, false);
  }
  pidfdGetfd(pidfd: number, targetFd: number, why?: string): number {
    this.rec('pidfdGetfd', [pidfd, targetFd, why]);
    return this.fd(`${this.fds.get(pidfd)?.path ?? pidfd}/fd/${targetFd}`, false);
  }
  statFd(fd: number): FileKind {
    this.rec('statFd', [fd]);
    const p = this.fds.get(fd);
    return (p && this.kinds.get(p.path)) ?? 'dir';
  }
  setxattr(path: string, name: string, value: Buffer, flags: number, why?: string): void { this.rec('setxattr', [path, name, value, flags, why]); }
  lsetxattr(path: string, name: string, value: Buffer, flags: number, why?: string): void { this.rec('lsetxattr', [path, name, value, flags, why]); }
  bpfProgLoad(progType: number, insns: Buffer, license: string, why?: string): number {
    this.rec('bpfProgLoad', [progType, insns, license, why]);
    return this.fd(`bpf-prog:${progType}`, false);
  }
  bpfProgAttach(targetFd: number, progFd: number, attachType: number, flags: number, why?: string): void { this.rec('bpfProgAttach', [targetFd, progFd, attachType, flags, why]); }
}

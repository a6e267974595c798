// The real kernel: libc and raw syscalls through koffi. This folder (src/linux) is the
// only one that imports koffi. Every wrapper checks the result, reads errno at once
// (before any other call can clobber it), retries on EINTR where the call is
// restartable, traces itself, and throws a KernelError naming the call, the errno and
// its arguments (paths quoted, flags by name).
import { closeSync, fstatSync, openSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tracer } from '../trace/tracer.js';
import { EINTR } from './errno.js';
import {
  AT_SYMLINK_NOFOLLOW, CLONE, O, MS, MNT, MOUNT_ATTR, RESOLVE, SYS, S_IFMT, S_IFCHR, S_IFBLK, S_IFIFO, AT_FDCWD, P_PID, WEXITED, WNOHANG,
  flagNames, openFlagNames,
} from './constants.js';
import {
  type CapSets, type Kernel, type SpawnRequest, type WaitResult, KernelError, SYSCALL_DOCS, quote,
} from './kernel.js';

type Fn = (...args: unknown[]) => number;
type KoffiModule = {
  load(name: string): { func(sig: string): Fn };
  errno(): number;
  address(b: Buffer): bigint;
};

const ARCH = process.arch === 'arm64' ? 'arm64' : 'x64';
const nr = (name: string): number => {
  const n = SYS[name];
  if (!n) throw new Error(`no syscall number for ${name}`);
  return n[ARCH];
};

/**
 * koffi's native addon, required directly. koffi's index.js finds the same file through
 * its build tools, which load crypto, https and zlib first: ~7 ms on every thread that
 * loads koffi, of a ~70 ms command. The addon is all of the API used here (load, func,
 * errno, address); the index only adds deprecated aliases. Another layout or a musl host
 * falls back to the index. bin/load-bundle.cjs loads it the same way.
 */
function loadKoffi(): KoffiModule {
  // createRequire keeps koffi a plain runtime require in the bundle.
  const req = createRequire(__filename);
  const triplet = process.platform === 'linux' ? ({ x64: 'linux_x64', arm64: 'linux_arm64' } as Record<string, string>)[process.arch] : undefined;
  if (triplet) {
    try {
      return req(`koffi/build/koffi/${triplet}/koffi.node`) as KoffiModule;
    } catch {
      /* the index knows where it is */
    }
  }
  return req('koffi') as KoffiModule;
}

/** Lazily bound libc functions: only the ones a command uses are declared. */
class Libc {
  private readonly koffi: KoffiModule;
  private readonly lib: { func(sig: string): Fn };
  private readonly cache = new Map<string, Fn>();
  constructor() {
    this.koffi = loadKoffi();
    this.lib = this.koffi.load('libc.so.6');
  }
  fn(sig: string): Fn {
    let f = this.cache.get(sig);
    if (!f) {
      f = this.lib.func(sig);
      this.cache.set(sig, f);
    }
    return f;
  }
  errno(): number {
    return this.koffi.errno();
  }
  /** The address of a Buffer's memory, for structs that hold pointers (sock_fprog). */
  address(b: Buffer): bigint {
    return this.koffi.address(b);
  }
}

/**
 * open and close go through Node's fs on the main thread, so a command that only opens a
 * file (tsrun-runtime start: the gate) never loads koffi. A worker thread keeps koffi for
 * them: Node warns when a worker closes an fd that Node did not open there. Worker entry
 * points say so with markWorkerThread() (worker_threads' isMainThread would tell too, but
 * loading that module costs ~3 ms of a 70 ms command).
 */
let nodeFds = true;
export function markWorkerThread(): void {
  nodeFds = false;
}

let libcSingleton: Libc | undefined;
const libc = (): Libc => (libcSingleton ??= new Libc());

const NS_FLAGS = { ...CLONE };
const MOUNT_FLAGS = { ...MS };

function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major), mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

function modeName(mode: number): string {
  const t = mode & S_IFMT;
  const kind = t === S_IFCHR ? 'S_IFCHR|' : t === S_IFBLK ? 'S_IFBLK|' : t === S_IFIFO ? 'S_IFIFO|' : '';
  return kind + '0' + (mode & 0o7777).toString(8);
}

function fdName(fd: number): string {
  return fd === AT_FDCWD ? 'AT_FDCWD' : String(fd);
}

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;

export class LinuxKernel implements Kernel {
  /**
   * Runs one call: retries EINTR when asked, traces, throws KernelError on failure.
   * `detail` is a function so nothing is formatted on the fast path.
   */
  private call(name: string, detail: () => string, why: string | undefined, f: () => number, retryEintr = false): number {
    const t0 = tracer.on ? tracer.now() : undefined;
    let r: number;
    let errno = 0;
    for (;;) {
      r = f();
      if (r >= 0) break;
      errno = libc().errno();
      if (!(retryEintr && errno === EINTR)) break;
    }
    if (r < 0) {
      const err = new KernelError(name, errno, detail());
      if (tracer.on) tracer.emit('syscall', name, detail(), err.code, why ?? SYSCALL_DOCS[name] ?? '', t0, true);
      throw err;
    }
    if (tracer.on) tracer.emit('syscall', name, detail(), String(r), why ?? SYSCALL_DOCS[name] ?? '', t0);
    return r;
  }

  unshare(flags: number, why?: string): void {
    const f = libc().fn('int unshare(int)');
    this.call('unshare', () => flagNames(flags, NS_FLAGS), why, () => f(flags));
  }

  setns(fd: number, nstype: number, why?: string): void {
    const f = libc().fn('int setns(int, int)');
    this.call('setns', () => `${fd}, ${flagNames(nstype, NS_FLAGS)}`, why, () => f(fd, nstype));
  }

  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, why?: string): void {
    const f = libc().fn('int mount(const char*, const char*, const char*, unsigned long, const char*)');
    this.call(
      'mount',
      () => `${quote(source)}, ${quote(target)}, ${quote(fstype)}, ${flagNames(flags, MOUNT_FLAGS)}${data ? ', ' + quote(data) : ''}`,
      why,
      () => f(source, target, fstype, flags, data),
    );
  }

  umount2(target: string, flags: number, why?: string): void {
    const f = libc().fn('int umount2(const char*, int)');
    this.call('umount2', () => `${quote(target)}, ${flagNames(flags, MNT)}`, why, () => f(target, flags));
  }

  pivotRoot(newRoot: string, putOld: string, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('pivot_root');
    this.call('pivot_root', () => `${quote(newRoot)}, ${quote(putOld)}`, why, () => f(n, 'str', newRoot, 'str', putOld));
  }

  chdir(path: string, why?: string): void {
    const f = libc().fn('int chdir(const char*)');
    this.call('chdir', () => quote(path), why, () => f(path));
  }

  chroot(path: string, why?: string): void {
    const f = libc().fn('int chroot(const char*)');
    this.call('chroot', () => quote(path), why, () => f(path));
  }

  socket(domain: number, type: number, protocol: number, why?: string): number {
    const f = libc().fn('int socket(int, int, int)');
    return this.call('socket', () => `${domain === 2 ? 'AF_INET' : domain}, ${type & 0xf}, ${protocol}`, why, () => f(domain, type, protocol));
  }

  fchdir(fd: number, why?: string): void {
    const f = libc().fn('int fchdir(int)');
    this.call('fchdir', () => String(fd), why, () => f(fd));
  }

  sethostname(name: string, why?: string): void {
    const f = libc().fn('int sethostname(const char*, size_t)');
    this.call('sethostname', () => quote(name), why, () => f(name, Buffer.byteLength(name)));
  }

  setdomainname(name: string, why?: string): void {
    const f = libc().fn('int setdomainname(const char*, size_t)');
    this.call('setdomainname', () => quote(name), why, () => f(name, Buffer.byteLength(name)));
  }

  /**
   * Like call(), for a syscall that Node itself makes synchronously on the calling thread
   * (its errors carry -errno). kill, and open and close on the main thread, go this way
   * so that a command needing nothing else (`tsrun-runtime start`: open the gate;
   * `delete`: kill) never loads koffi and libc, which cost 7-15 ms of such a command
   * here. Not open/close in a worker: Node warns when a worker closes an fd it did not
   * open itself (unmanaged fd tracking), and the setup thread closes koffi's fds.
   */
  private viaNode(name: string, detail: () => string, why: string | undefined, f: () => number): number {
    const t0 = tracer.on ? tracer.now() : undefined;
    let r: number;
    try {
      r = f();
    } catch (e) {
      const errno = -((e as NodeJS.ErrnoException).errno ?? 0);
      if (!(errno > 0)) throw e;
      const err = new KernelError(name, errno, detail());
      if (tracer.on) tracer.emit('syscall', name, detail(), err.code, why ?? SYSCALL_DOCS[name] ?? '', t0, true);
      throw err;
    }
    if (tracer.on) tracer.emit('syscall', name, detail(), String(r), why ?? SYSCALL_DOCS[name] ?? '', t0);
    return r;
  }

  open(path: string, flags: number, mode = 0, why?: string): number {
    // libuv retries EINTR and adds O_CLOEXEC, which every caller asks for already.
    if (nodeFds && flags & O.O_CLOEXEC) return this.viaNode('open', () => `${quote(path)}, ${openFlagNames(flags)}`, why, () => openSync(path, flags, mode));
    const f = libc().fn('int open(const char*, int, ...)');
    return this.call('open', () => `${quote(path)}, ${openFlagNames(flags)}`, why, () => f(path, flags, 'uint32_t', mode), true);
  }

  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(flags), 0);
    how.writeBigUInt64LE(BigInt(mode), 8);
    how.writeBigUInt64LE(BigInt(resolve), 16);
    const n = nr('openat2');
    return this.call(
      'openat2',
      () => `${fdName(dirfd)}, ${quote(path)}, ${openFlagNames(flags)}, ${flagNames(resolve, RESOLVE)}`,
      why,
      () => f(n, 'int', dirfd, 'str', path, 'void *', how, 'size_t', 24),
      true,
    );
  }

  close(fd: number): void {
    if (nodeFds) {
      try {
        closeSync(fd);
      } catch {
        /* as below: close's result is not checked */
      }
      return;
    }
    const f = libc().fn('int close(int)');
    // close is not retried on EINTR: on Linux the fd is gone either way.
    f(fd);
  }

  mkdirat(dirfd: number, path: string, mode: number, why?: string): void {
    const f = libc().fn('int mkdirat(int, const char*, uint32_t)');
    this.call('mkdirat', () => `${fdName(dirfd)}, ${quote(path)}, 0${mode.toString(8)}`, why, () => f(dirfd, path, mode));
  }

  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number, why?: string): void {
    const f = libc().fn('int mknodat(int, const char*, uint32_t, uint64_t)');
    const dev = makedev(major, minor);
    this.call('mknodat', () => `${fdName(dirfd)}, ${quote(path)}, ${modeName(mode)}, ${major}:${minor}`, why, () => f(dirfd, path, mode, dev));
  }

  symlinkat(target: string, dirfd: number, path: string, why?: string): void {
    const f = libc().fn('int symlinkat(const char*, int, const char*)');
    this.call('symlinkat', () => `${quote(target)}, ${fdName(dirfd)}, ${quote(path)}`, why, () => f(target, dirfd, path));
  }

  fchownat(dirfd: number, path: string, uid: number, gid: number, why?: string): void {
    const f = libc().fn('int fchownat(int, const char*, uint32_t, uint32_t, int)');
    this.call('fchownat', () => `${fdName(dirfd)}, ${quote(path)}, ${uid}, ${gid}, AT_SYMLINK_NOFOLLOW`, why, () => f(dirfd, path, uid, gid, AT_SYMLINK_NOFOLLOW));
  }


  mkfifo(path: string, mode: number, why?: string): void {
    const f = libc().fn('int mkfifo(const char*, uint32_t)');
    this.call('mkfifo', () => `${quote(path)}, 0${mode.toString(8)}`, why, () => f(path, mode));
  }

  prctl(option: number, arg2: number, arg3 = 0, why?: string): number {
    const f = libc().fn('int prctl(int, ...)');
    const u = 'unsigned long';
    return this.call('prctl', () => `${prctlName(option)}, ${arg2}${arg3 ? ', ' + arg3 : ''}`, why, () => f(option, u, arg2, u, arg3, u, 0, u, 0));
  }

  capget(): CapSets {
    const f = libc().fn('long syscall(long, ...)');
    const header = Buffer.alloc(8);
    header.writeUInt32LE(0x20080522, 0); // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
    const data = Buffer.alloc(24);
    const n = nr('capget');
    this.call('capget', () => '', undefined, () => f(n, 'void *', header, 'void *', data));
    const word = (off: number): bigint => BigInt(data.readUInt32LE(off)) | (BigInt(data.readUInt32LE(off + 12)) << 32n);
    return { effective: word(0), permitted: word(4), inheritable: word(8) };
  }

  capset(sets: CapSets, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const header = Buffer.alloc(8);
    header.writeUInt32LE(0x20080522, 0);
    const data = Buffer.alloc(24);
    const put = (v: bigint, off: number): void => {
      data.writeUInt32LE(Number(v & 0xffffffffn), off);
      data.writeUInt32LE(Number((v >> 32n) & 0xffffffffn), off + 12);
    };
    put(sets.effective, 0);
    put(sets.permitted, 4);
    put(sets.inheritable, 8);
    const n = nr('capset');
    this.call(
      'capset',
      () => `eff=0x${sets.effective.toString(16)}, prm=0x${sets.permitted.toString(16)}, inh=0x${sets.inheritable.toString(16)}`,
      why,
      () => f(n, 'void *', header, 'void *', data),
    );
  }

  setresuid(r: number, e: number, s: number, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('setresuid');
    const u = 'unsigned int';
    this.call('setresuid', () => `${r}, ${e}, ${s}`, why, () => f(n, u, r, u, e, u, s));
  }

  setresgid(r: number, e: number, s: number, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('setresgid');
    const u = 'unsigned int';
    this.call('setresgid', () => `${r}, ${e}, ${s}`, why, () => f(n, u, r, u, e, u, s));
  }

  setgroups(gids: number[], why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const buf = Buffer.alloc(Math.max(4, gids.length * 4));
    gids.forEach((g, i) => buf.writeUInt32LE(g, i * 4));
    const n = nr('setgroups');
    this.call('setgroups', () => `[${gids.join(', ')}]`, why, () => f(n, 'size_t', gids.length, 'void *', buf));
  }

  prlimit(pid: number, resource: number, soft: bigint, hard: bigint, why?: string): void {
    const f = libc().fn('int prlimit(int, int, const void*, void*)');
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(soft, 0);
    buf.writeBigUInt64LE(hard, 8);
    this.call('prlimit', () => `${pid}, ${rlimitName(resource)}, ${fmtLimit(soft)}, ${fmtLimit(hard)}`, why, () => f(pid, resource, buf, null));
  }

  seccompSetFilter(program: Buffer, flags: number, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(program.length / 8, 0);
    fprog.writeBigUInt64LE(libc().address(program), 8);
    const n = nr('seccomp');
    const u = 'unsigned int';
    this.call('seccomp', () => `SECCOMP_SET_MODE_FILTER, ${flags}, ${program.length / 8} instructions`, why, () => f(n, u, 1, u, flags, 'void *', fprog));
  }

  fcntl(fd: number, cmd: number, arg: number): number {
    const f = libc().fn('int fcntl(int, int, ...)');
    return this.call('fcntl', () => `${fd}, ${cmd}, ${arg}`, undefined, () => f(fd, cmd, 'int', arg), true);
  }

  closeRange(first: number, last: number, flags: number, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('close_range');
    const u = 'unsigned int';
    this.call('close_range', () => `${first}, ${last >>> 0 === 0xffffffff ? '~0U' : last}, ${flags === 4 ? 'CLOSE_RANGE_CLOEXEC' : flags}`, why, () => f(n, u, first, u, last >>> 0, u, flags));
  }

  ioctl(fd: number, request: number, arg: Buffer | number, why?: string): number {
    const f = libc().fn('int ioctl(int, unsigned long, ...)');
    return this.call('ioctl', () => `${fd}, 0x${request.toString(16)}`, why, () =>
      typeof arg === 'number' ? f(fd, request, 'int', arg) : f(fd, request, 'void *', arg), true);
  }

  kill(pid: number, signal: number, why?: string): void {
    this.viaNode('kill', () => `${pid}, ${signal}`, why, () => (process.kill(pid, signal), 0));
  }

  wait(pid: number, nohang: boolean): WaitResult | null {
    const f = libc().fn('int waitid(int, uint32_t, void*, int)');
    const info = Buffer.alloc(128);
    const opts = WEXITED | (nohang ? WNOHANG : 0);
    this.call('waitid', () => `P_PID, ${pid}, WEXITED${nohang ? '|WNOHANG' : ''}`, undefined, () => f(P_PID, pid, info, opts), true);
    const got = info.readInt32LE(16);
    if (got === 0) return null;
    const code = info.readInt32LE(8); // si_code: CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3
    const status = info.readInt32LE(24);
    return code === 1 ? { pid: got, code: status, signal: null } : { pid: got, code: null, signal: status };
  }

  spawn(req: SpawnRequest, why?: string): number {
    const L = libc();
    const fa = Buffer.alloc(128);
    const attr = Buffer.alloc(512);
    const chk = (name: string, r: number): void => {
      if (r !== 0) throw new KernelError(name, r, '');
    };
    chk('posix_spawn_file_actions_init', L.fn('int posix_spawn_file_actions_init(void*)')(fa));
    chk('posix_spawnattr_init', L.fn('int posix_spawnattr_init(void*)')(attr));
    try {
      const addopen = L.fn('int posix_spawn_file_actions_addopen(void*, int, const char*, int, uint32_t)');
      const adddup2 = L.fn('int posix_spawn_file_actions_adddup2(void*, int, int)');
      const addclosefrom = L.fn('int posix_spawn_file_actions_addclosefrom_np(void*, int)');
      const addchdir = L.fn('int posix_spawn_file_actions_addchdir_np(void*, const char*)');
      // Scratch fds in the child: the lowest numbers above the preserved ones that no
      // stdio source uses. They must stay low: prlimit may already have lowered the
      // child's RLIMIT_NOFILE (--ulimit nofile=64), and dup2 refuses a target above it.
      const sources = new Set(req.stdio.flatMap((s) => ('parentFd' in s.from ? [s.from.parentFd] : [])));
      let next = 3 + req.preserveFds;
      const scratch = (): number => {
        while (sources.has(next)) next++;
        return next++;
      };
      // The child runs these in order. Before it blocks at the gate it holds nothing of
      // tsrun's: every descriptor it inherited is closed or is its final stdio, so that
      // while it waits (after a runtime `create`, possibly for long) a pipe a shim gave
      // tsrun as stdout sees EOF when tsrun exits, not when the container starts. What
      // it opens by path inside the container (the terminal, /dev/null) it opens after
      // the gate: by then the main thread has finished the container's mounts, and
      // /proc/PID/fd shows those files where the container sees them.
      const addclose = L.fn('int posix_spawn_file_actions_addclose(void*, int)');
      const afterGate: Array<() => void> = [];
      const closed: number[] = [];
      const close = (fd: number): void => {
        chk('addclose', addclose(fa, fd));
        closed.push(fd);
      };
      if (req.ctty) {
        // 1. The controlling terminal, after the gate: the child is a new session leader
        //    (POSIX_SPAWN_SETSID), so opening a tty without O_NOCTTY makes it the
        //    session's controlling terminal. It is all of stdin, stdout and stderr.
        for (const fd of [0, 1, 2]) close(fd);
        afterGate.push(() => {
          chk('addopen', addopen(fa, 0, req.ctty!, 2 /* O_RDWR */, 0));
          chk('adddup2', adddup2(fa, 0, 1));
          chk('adddup2', adddup2(fa, 0, 2));
        });
      } else {
        // 1. stdio. Sources that are themselves 0-2 go through a scratch fd so a dup2
        //    onto 1 cannot clobber a source still needed for 2. dup2(fd, fd) clears
        //    FD_CLOEXEC, which Node sets on its own 0-2.
        const staged = new Map<number, number>();
        for (const s of req.stdio) {
          if ('parentFd' in s.from && s.from.parentFd < 3 && s.from.parentFd !== s.fd) {
            const tmp = scratch();
            chk('adddup2', adddup2(fa, s.from.parentFd, tmp));
            staged.set(s.fd, tmp);
          }
        }
        for (const s of req.stdio) {
          const from = s.from;
          if ('path' in from) {
            close(s.fd);
            afterGate.push(() => chk('addopen', addopen(fa, s.fd, from.path, from.flags, 0)));
          } else chk('adddup2', adddup2(fa, staged.get(s.fd) ?? from.parentFd, s.fd));
        }
      }
      for (let i = 0; i < req.preserveFds; i++) chk('adddup2', adddup2(fa, 3 + i, 3 + i));
      // 2. Close every other descriptor: no host fd reaches the container.
      chk('addclosefrom', addclosefrom(fa, 3 + req.preserveFds));
      // 3. The gate: block in open() until tsrun opens the FIFO's other end. It is
      //    close-on-exec, and opened by a name relative to the cwd (tsrun's state dir).
      //    open() takes the lowest free number, and placing it elsewhere would take a
      //    dup2, which drops close-on-exec: so it goes to the lowest free number. When
      //    that is a stdio fd, the open after the gate replaces it.
      const gateFd = closed.length ? Math.min(...closed) : 3 + req.preserveFds;
      if (req.gatePath) chk('addopen', addopen(fa, gateFd, req.gatePath, 0 /* O_RDONLY */ | 0o2000000, 0));
      for (const add of afterGate) add();
      // 4. Into the container's working directory, last.
      chk('addchdir', addchdir(fa, req.cwd));

      // Every signal back to its default (Node ignores SIGPIPE, and ignored signals
      // survive execve), and an empty mask.
      const all = Buffer.alloc(128, 0xff);
      const none = Buffer.alloc(128, 0);
      chk('setsigdefault', L.fn('int posix_spawnattr_setsigdefault(void*, const void*)')(attr, all));
      chk('setsigmask', L.fn('int posix_spawnattr_setsigmask(void*, const void*)')(attr, none));
      const flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (req.setsid ? POSIX_SPAWN_SETSID : 0);
      chk('setflags', L.fn('int posix_spawnattr_setflags(void*, short)')(attr, flags));

      const spawn = L.fn('int posix_spawn(_Out_ int *, const char *, void *, void *, char **, char **)');
      const pid = [0];
      const t0 = tracer.on ? tracer.now() : undefined;
      const rc = spawn(pid, req.path, fa, attr, [...req.argv, null], [...req.env, null]);
      const detail = (): string => `${quote(req.path)}, [${req.argv.map(quote).join(', ')}]${req.gatePath ? ', gate' : ''}${req.ctty ? ', ctty=' + quote(req.ctty) : ''}`;
      if (rc !== 0) {
        const err = new KernelError('posix_spawn', rc, detail());
        if (tracer.on) tracer.emit('syscall', 'posix_spawn', detail(), err.code, why ?? SYSCALL_DOCS.posix_spawn!, t0, true);
        throw err;
      }
      if (tracer.on) tracer.emit('syscall', 'posix_spawn', detail(), `pid ${pid[0]}`, why ?? SYSCALL_DOCS.posix_spawn!, t0);
      return pid[0]!;
    } finally {
      L.fn('int posix_spawn_file_actions_destroy(void*)')(fa);
      L.fn('int posix_spawnattr_destroy(void*)')(attr);
    }
  }

  writeFile(path: string, data: string, why?: string): void {
    const t0 = tracer.on ? tracer.now() : undefined;
    const kind = path.startsWith('/sys/fs/cgroup') ? 'cgroup' : 'syscall';
    try {
      writeFileSync(path, data);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const errno = -(err.errno ?? -5);
      if (tracer.on) tracer.emit(kind, 'write', `${quote(path)}, ${quote(data)}`, err.code ?? 'EIO', why ?? SYSCALL_DOCS.write!, t0, true);
      throw new KernelError('write', errno, `${quote(path)}, ${quote(data)}`);
    }
    if (tracer.on) tracer.emit(kind, 'write', `${quote(path)}, ${quote(data)}`, '0', why ?? SYSCALL_DOCS.write!, t0);
  }

  gettid(): number {
    return libc().fn('int gettid()')();
  }

  exitNow(code: number): never {
    libc().fn('void _exit(int)')(code);
    throw new Error('unreachable');
  }

  sendFd(socketPath: string, fd: number, why?: string): void {
    const L = libc();
    const sock = this.call('socket', () => 'AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0', why, () => L.fn('int socket(int, int, int)')(1, 1 | 0o2000000, 0));
    try {
      // struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }
      const addr = Buffer.alloc(110);
      addr.writeUInt16LE(1, 0);
      if (Buffer.byteLength(socketPath) > 107) throw new KernelError('connect', 36, quote(socketPath));
      addr.write(socketPath, 2);
      this.call('connect', () => quote(socketPath), why, () => L.fn('int connect(int, const void*, uint32_t)')(sock, addr, 110), true);
      // One byte of payload (the name of the terminal, as runc sends), and a control
      // message carrying the fd: cmsghdr { size_t len; int level; int type; int fd; }
      const payload = Buffer.from('/dev/ptmx');
      const iov = Buffer.alloc(16);
      iov.writeBigUInt64LE(L.address(payload), 0);
      iov.writeBigUInt64LE(BigInt(payload.length), 8);
      const cmsg = Buffer.alloc(24);
      cmsg.writeBigUInt64LE(20n, 0); // CMSG_LEN(sizeof(int))
      cmsg.writeInt32LE(1, 8); // SOL_SOCKET
      cmsg.writeInt32LE(1, 12); // SCM_RIGHTS
      cmsg.writeInt32LE(fd, 16);
      // struct msghdr { name; namelen; iov; iovlen; control; controllen; flags }
      const msg = Buffer.alloc(56);
      msg.writeBigUInt64LE(L.address(iov), 16);
      msg.writeBigUInt64LE(1n, 24);
      msg.writeBigUInt64LE(L.address(cmsg), 32);
      msg.writeBigUInt64LE(24n, 40);
      this.call('sendmsg', () => `${quote(socketPath)}, SCM_RIGHTS [${fd}]`, why, () => L.fn('long sendmsg(int, const void*, int)')(sock, msg, 0), true);
    } finally {
      this.close(sock);
    }
  }

  umask(mask: number): number {
    const f = libc().fn('uint32_t umask(uint32_t)');
    const old = f(mask);
    if (tracer.on) tracer.emit('syscall', 'umask', '0' + mask.toString(8), '0' + old.toString(8), SYSCALL_DOCS.umask!);
    return old;
  }

  fsopen(fstype: string, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('fsopen');
    return this.call('fsopen', () => `${quote(fstype)}, FSOPEN_CLOEXEC`, why, () => f(n, 'str', fstype, 'unsigned int', 1));
  }

  fsconfigString(fsfd: number, key: string, value: string | null, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('fsconfig');
    // FSCONFIG_SET_FLAG = 0 (a bare option), FSCONFIG_SET_STRING = 1
    const cmd = value === null ? 0 : 1;
    this.call('fsconfig', () => `${fsfd}, ${value === null ? 'FSCONFIG_SET_FLAG' : 'FSCONFIG_SET_STRING'}, ${quote(key)}${value === null ? '' : ', ' + quote(value)}`, why,
      () => f(n, 'int', fsfd, 'unsigned int', cmd, 'str', key, 'str', value, 'int', 0));
  }

  fsconfigCreate(fsfd: number, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('fsconfig');
    this.call('fsconfig', () => `${fsfd}, FSCONFIG_CMD_CREATE`, why ?? 'create the superblock from the configured context', () => f(n, 'int', fsfd, 'unsigned int', 6, 'str', null, 'str', null, 'int', 0));
  }

  fsmount(fsfd: number, attrFlags: number, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('fsmount');
    return this.call('fsmount', () => `${fsfd}, FSMOUNT_CLOEXEC, ${flagNames(attrFlags, MOUNT_ATTR)}`, why, () => f(n, 'int', fsfd, 'unsigned int', 1, 'unsigned int', attrFlags));
  }

  moveMount(fromFd: number, toDirfd: number, toPath: string, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('move_mount');
    // MOVE_MOUNT_F_EMPTY_PATH = 0x4, MOVE_MOUNT_T_EMPTY_PATH = 0x40
    const flags = 0x4 | (toPath === '' ? 0x40 : 0);
    this.call('move_mount', () => `${fromFd}, "", ${fdName(toDirfd)}, ${quote(toPath)}`, why, () => f(n, 'int', fromFd, 'str', '', 'int', toDirfd, 'str', toPath, 'unsigned int', flags));
  }

  openTree(path: string, recursive: boolean, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('open_tree');
    // OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = O_CLOEXEC, AT_RECURSIVE = 0x8000
    const flags = 1 | 0o2000000 | (recursive ? 0x8000 : 0);
    return this.call('open_tree', () => `AT_FDCWD, ${quote(path)}, OPEN_TREE_CLONE${recursive ? '|AT_RECURSIVE' : ''}`, why, () => f(n, 'int', AT_FDCWD, 'str', path, 'unsigned int', flags));
  }

  pipe(why?: string): [number, number] {
    const f = libc().fn('int pipe2(void *, int)');
    const fds = Buffer.alloc(8);
    this.call('pipe2', () => 'O_CLOEXEC', why, () => f(fds, O.O_CLOEXEC));
    return [fds.readInt32LE(0), fds.readInt32LE(4)];
  }

  pidfdOpen(pid: number, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('pidfd_open');
    return this.call('pidfd_open', () => `${pid}, 0`, why, () => f(n, 'int', pid, 'unsigned int', 0));
  }

  pidfdGetfd(pidfd: number, targetFd: number, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('pidfd_getfd');
    return this.call('pidfd_getfd', () => `${pidfd}, ${targetFd}, 0`, why, () => f(n, 'int', pidfd, 'int', targetFd, 'unsigned int', 0));
  }

  statFd(fd: number): 'dir' | 'file' | 'other' {
    let st;
    try {
      st = fstatSync(fd);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new KernelError('fstat', -(err.errno ?? -5), String(fd));
    }
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  }

  setxattr(path: string, name: string, value: Buffer, flags: number, why?: string): void {
    const f = libc().fn('int setxattr(const char*, const char*, const void*, size_t, int)');
    this.call('setxattr', () => `${quote(path)}, ${quote(name)}, ${value.length} bytes, ${flags}`, why, () => f(path, name, value, value.length, flags));
  }

  lsetxattr(path: string, name: string, value: Buffer, flags: number, why?: string): void {
    const f = libc().fn('int lsetxattr(const char*, const char*, const void*, size_t, int)');
    this.call('lsetxattr', () => `${quote(path)}, ${quote(name)}, ${value.length} bytes, ${flags}`, why, () => f(path, name, value, value.length, flags));
  }

  bpfProgLoad(progType: number, insns: Buffer, license: string, why?: string): number {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('bpf');
    const lic = Buffer.from(`${license}\0`);
    // union bpf_attr, BPF_PROG_LOAD part (include/uapi/linux/bpf.h): prog_type, insn_cnt,
    // insns, license, log_level, log_size, log_buf, kern_version, prog_flags, prog_name.
    // Bytes past what this kernel knows must be zero, and they are.
    const load = (log: Buffer | null): number => {
      const attr = Buffer.alloc(128);
      attr.writeUInt32LE(progType, 0);
      attr.writeUInt32LE(insns.length / 8, 4);
      attr.writeBigUInt64LE(libc().address(insns), 8);
      attr.writeBigUInt64LE(libc().address(lic), 16);
      if (log) {
        attr.writeUInt32LE(1, 24);
        attr.writeUInt32LE(log.length, 28);
        attr.writeBigUInt64LE(libc().address(log), 32);
      }
      attr.write('tsrun_dev', 48, 'latin1'); // prog_name, shown by bpftool
      return f(n, 'int', BPF_CMD.PROG_LOAD, 'void *', attr, 'unsigned int', attr.length);
    };
    const detail = `BPF_PROG_LOAD, ${BPF_PROG_TYPE_NAME[progType] ?? progType}, ${insns.length / 8} instructions`;
    try {
      return this.call('bpf', () => detail, why, () => load(null));
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      // Loaded again with a log only on failure: the verifier's log costs time, and a
      // too-small buffer would itself fail the load with ENOSPC.
      const log = Buffer.alloc(1 << 16);
      const fd = load(log);
      if (fd >= 0) return fd;
      const end = log.indexOf(0);
      const text = log.toString('utf8', 0, end < 0 ? log.length : end).trim().split('\n').slice(-8).join(' | ');
      throw new KernelError('bpf', e.errno, text ? `${detail}; verifier: ${text}` : detail);
    }
  }

  bpfProgAttach(targetFd: number, progFd: number, attachType: number, flags: number, why?: string): void {
    const f = libc().fn('long syscall(long, ...)');
    const n = nr('bpf');
    // BPF_PROG_ATTACH part: target_fd, attach_bpf_fd, attach_type, attach_flags
    const attr = Buffer.alloc(32);
    attr.writeUInt32LE(targetFd, 0);
    attr.writeUInt32LE(progFd, 4);
    attr.writeUInt32LE(attachType, 8);
    attr.writeUInt32LE(flags, 12);
    const flagText = flags === 2 ? 'BPF_F_ALLOW_MULTI' : flags === 1 ? 'BPF_F_ALLOW_OVERRIDE' : String(flags);
    this.call('bpf', () => `BPF_PROG_ATTACH, target ${targetFd}, prog ${progFd}, ${BPF_ATTACH_TYPE_NAME[attachType] ?? attachType}, ${flagText}`, why,
      () => f(n, 'int', BPF_CMD.PROG_ATTACH, 'void *', attr, 'unsigned int', attr.length));
  }
}

/** bpf(2) commands, program and attach types used (include/uapi/linux/bpf.h enums) */
const BPF_CMD = { PROG_LOAD: 5, PROG_ATTACH: 8 } as const;
const BPF_PROG_TYPE_NAME: Record<number, string> = { 15: 'BPF_PROG_TYPE_CGROUP_DEVICE' };
const BPF_ATTACH_TYPE_NAME: Record<number, string> = { 6: 'BPF_CGROUP_DEVICE' };

const PRCTL_NAMES: Record<number, string> = {
  1: 'PR_SET_PDEATHSIG', 4: 'PR_SET_DUMPABLE', 8: 'PR_SET_KEEPCAPS', 23: 'PR_CAPBSET_READ', 24: 'PR_CAPBSET_DROP',
  28: 'PR_SET_SECUREBITS', 36: 'PR_SET_CHILD_SUBREAPER', 38: 'PR_SET_NO_NEW_PRIVS', 47: 'PR_CAP_AMBIENT',
};
function prctlName(o: number): string {
  return PRCTL_NAMES[o] ?? String(o);
}
const RLIMIT_NAMES = ['RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_DATA', 'RLIMIT_STACK', 'RLIMIT_CORE', 'RLIMIT_RSS', 'RLIMIT_NPROC', 'RLIMIT_NOFILE', 'RLIMIT_MEMLOCK', 'RLIMIT_AS', 'RLIMIT_LOCKS', 'RLIMIT_SIGPENDING', 'RLIMIT_MSGQUEUE', 'RLIMIT_NICE', 'RLIMIT_RTPRIO', 'RLIMIT_RTTIME'];
function rlimitName(r: number): string {
  return RLIMIT_NAMES[r] ?? String(r);
}
function fmtLimit(v: bigint): string {
  return v === 0xffffffffffffffffn ? 'unlimited' : v.toString();
}

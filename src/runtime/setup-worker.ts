// The setup thread: a worker_thread that turns itself into the container's context and
// then spawns the container process, which inherits that context. It is thrown away
// afterwards: its namespaces, root and credentials are no longer the host's.
//
// Why a thread and not a process: namespaces, root, cwd, credentials, capabilities,
// no_new_privs and seccomp all belong to a thread in Linux. posix_spawn() from this
// thread creates a child in this thread's image, running only glibc's C code between
// clone and execve (Node cannot run JavaScript after fork). That saves a second Node
// start-up (~50-70 ms) on every container start.
import { parentPort, workerData } from 'node:worker_threads';
import { mkdirSync, statSync } from 'node:fs';
import { O, PR, TIOCGPTN, TIOCSPTLCK, TIOCSWINSZ } from '../linux/constants.js';
import { LinuxKernel, markWorkerThread } from '../linux/libc.js';
import { TsrunError, serializeError } from '../errors.js';
import { KernelError } from '../linux/kernel.js';
import { enterNamespaces, planNamespaces, NS_FILE } from '../namespaces/index.js';
import { setupRootfs } from '../rootfs/setup.js';
import { bringUpLoopback } from '../namespaces/loopback.js';
import { applyCredentials } from '../security/credentials.js';
import { installSeccomp, prepareSeccomp } from '../security/seccomp/index.js';
import { tracer } from '../trace/tracer.js';
import { resolveExecutable } from './exec-path.js';
import { GATE_NAME, type SetupPlan, type WorkerMessage } from './protocol.js';
import { NO_MOUNT_NS } from '../spec/validate.js';
import type { NamespaceType } from '../spec/types.js';

const post = (m: WorkerMessage): void => parentPort!.postMessage(m);
markWorkerThread();
const k = new LinuxKernel();
// Load koffi and libc now, while the main thread is still parsing flags.
k.gettid();

function run(plan: SetupPlan): void {
  tracer.configure(plan.trace, { thread: 'setup', color: plan.color });
  const spec = plan.spec;
  const proc = spec.process!;
  // Compiled first, so a bad profile fails before any namespace or mount exists.
  const seccomp = prepareSeccomp(spec.linux?.seccomp);
  const stateFd = k.open(plan.stateDir, O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC, 0, 'hold tsrun\'s state dir, where the start gate lives');

  let deferred: SetupPlan['spec']['mounts'] = [];
  if (plan.mode === 'create') {
    const nsPlan = planNamespaces(spec);
    // cgroups (issue 4): a v1 `tasks` write moves this one thread. Inside the container's
    // cgroup when it unshares CLONE_NEWCGROUP, the namespace's root is that cgroup.
    // The main thread has usually done it while this thread booted (launcher.ts).
    if (nsPlan.fresh.includes('cgroup') && plan.movedTid !== k.gettid()) {
      for (const f of plan.cgroupThreadFiles ?? []) k.writeFile(f, String(k.gettid()), 'move the setup thread into the container\'s v1 cgroup, so the cgroup namespace unshared next has it as its root');
    }
    enterNamespaces(k, nsPlan);
    // Namespaced sysctls are written through the host's /proc before pivot_root: the
    // kernel picks the namespace of the *writer*, which is now this thread.
    for (const [key, value] of Object.entries(spec.linux?.sysctl ?? {})) {
      k.writeFile(`/proc/sys/${key.replace(/\./g, '/')}`, value, `sysctl ${key}=${value} in the container's own namespace`);
    }
    if (nsPlan.fresh.includes('network')) bringUpLoopback(k);
    const newMount = nsPlan.fresh.includes('mount') || nsPlan.join.some((j) => j.type === 'mount');
    if (!newMount) throw new TsrunError('SPEC_INVALID', `invalid OCI spec: linux.namespaces: ${NO_MOUNT_NS}`);
    const sharedNet = !nsPlan.fresh.includes('network');
    deferred = setupRootfs(k, spec, plan.rootfs, plan.bundle, sharedNet, plan.overlay).deferred;
    if (nsPlan.fresh.includes('uts') && spec.hostname) k.sethostname(spec.hostname);
    if (nsPlan.fresh.includes('uts') && spec.domainname) k.setdomainname(spec.domainname);
  } else {
    const types: NamespaceType[] = ['cgroup', 'ipc', 'uts', 'network', 'pid', 'mount'];
    enterNamespaces(k, { fresh: [], join: types.map((type) => ({ type, path: `/proc/${plan.joinPid}/ns/${NS_FILE[type]}` })) });
  }

  const env = proc.env ?? [];
  // process.cwd is created if missing (as runc does), but not under the filesystems
  // the main thread mounts later (/proc): that would leave directories in the rootfs
  // that the mount then hides.
  if (!(deferred ?? []).some((m) => proc.cwd === m.destination || proc.cwd.startsWith(m.destination + '/'))) {
    try {
      mkdirSync(proc.cwd, { recursive: true, mode: 0o755 });
    } catch {
      /* a read-only root with an existing cwd is fine; a missing one fails at chdir */
    }
  }
  const path = resolveExecutable(proc.args[0]!, env, proc.cwd);

  let ptyMaster: number | null = null;
  let ctty: string | undefined;
  if (plan.tty) {
    // The pty comes from the container's own devpts instance, so the container sees
    // /dev/pts/0 and nothing of the host's terminals.
    ptyMaster = k.open('/dev/ptmx', O.O_RDWR | O.O_NOCTTY, 0, 'allocate a pseudo-terminal in the container\'s devpts');
    k.ioctl(ptyMaster, TIOCSPTLCK, Buffer.alloc(4), 'unlock the pty slave');
    const n = Buffer.alloc(4);
    k.ioctl(ptyMaster, TIOCGPTN, n, 'read the pty number');
    ctty = `/dev/pts/${n.readUInt32LE(0)}`;
    const ws = Buffer.alloc(8);
    ws.writeUInt16LE(plan.tty.rows, 0);
    ws.writeUInt16LE(plan.tty.cols, 2);
    k.ioctl(ptyMaster, TIOCSWINSZ, ws, 'start with the caller\'s window size');
  }
  k.umask(proc.user.umask ?? 0o022);
  // CVE-2019-5736: until its execve the spawned child shares this process's memory, so
  // its /proc/PID/exe is the host's node binary, and for `exec` it is already visible
  // inside the container. A container root could open it there and, once no process
  // runs node any more (ETXTBSY gone), reopen it for writing through /proc/self/fd.
  // Non-dumpable memory makes /proc/PID/exe (and mem, fd, environ) need CAP_SYS_PTRACE
  // over the host. The flag is per mm: it covers tsrun and the child; execve resets it.
  k.prctl(PR.PR_SET_DUMPABLE, 0, 0, 'make tsrun and the not-yet-exec\'d child non-dumpable: no /proc/PID/exe of the host\'s node for the container');
  // seccomp(2) needs no_new_privs or CAP_SYS_ADMIN. With no_new_privs the filter goes
  // last, after applyCredentials sets it; without, it must go in while this thread still
  // has CAP_SYS_ADMIN, before the capabilities are dropped (runc's order too). The
  // credential syscalls after it (capset, setres[ug]id, prctl) are ones the default
  // profile allows.
  if (seccomp && !proc.noNewPrivileges) installSeccomp(k, seccomp);
  applyCredentials(k, proc, plan.lastCap);
  if (seccomp && proc.noNewPrivileges) installSeccomp(k, seccomp);

  // The child opens the gate by a relative name: its cwd is inherited from this thread,
  // so we stand in the state dir for the moment of the spawn. Its next file action is
  // chdir(process.cwd), inside the container, before execve.
  k.fchdir(stateFd, 'stand in the state dir so the child can open the gate by name; it chdir()s into the container before execve');
  post({ t: 'spawning', deferred: deferred ?? [], ptyMaster, setupTid: k.gettid() });
  let pid: number;
  try {
    pid = k.spawn({
      path, argv: proc.args, env, cwd: proc.cwd, gatePath: GATE_NAME, setsid: true, ctty,
      stdio: plan.stdio, preserveFds: plan.preserveFds,
    });
  } catch (e) {
    // The executable was found above, so a failure after the gate is one of the last
    // file actions (the chdir) or execve itself. glibc has already reaped the child.
    if (e instanceof KernelError) {
      if ((e.code === 'ENOENT' || e.code === 'ENOTDIR') && !isDirectory(proc.cwd)) throw new TsrunError('CONTAINER_SETUP', `the working directory "${proc.cwd}" cannot be entered in the container (${e.code})`, { hint: 'give -w / process.cwd a directory that exists in the container', cause: e });
      if (e.code === 'EACCES') throw new TsrunError('EXEC_NOT_EXECUTABLE', `exec "${proc.args[0]}": permission denied`, { cause: e });
      if (e.code === 'ENOEXEC') throw new TsrunError('EXEC_NOT_EXECUTABLE', `exec "${proc.args[0]}": exec format error`, { hint: 'the file is not a binary for this machine, or a script without a #! line', cause: e });
      // The child runs its file actions under the filter: a profile that refuses one of
      // them fails the spawn with its errno (or ENOENT, from glibc's /proc/self/fd
      // fallback when close_range is refused).
      if (seccomp) {
        throw new TsrunError('CONTAINER_SETUP', `starting the container process failed (${e.code}) under its seccomp profile: the process starts under the filter, so linux.seccomp must allow clone, setsid, rt_sigaction, rt_sigprocmask, fcntl, dup2, openat, close_range, chdir and execve`, {
          hint: 'allow those syscalls in the profile', cause: e,
        });
      }
    }
    throw e;
  }
  post({ t: 'spawned', pid });
}

/** Seen from this thread: its root is the container's by now. */
function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function start(plan: SetupPlan): void {
  try {
    run(plan);
  } catch (e) {
    if (plan.failed) Atomics.store(new Int32Array(plan.failed), 0, 1);
    post({ t: 'error', error: serializeError(e) });
  }
}

if (workerData) start(workerData as SetupPlan);
else {
  parentPort!.once('message', start);
  post({ t: 'ready' });
}

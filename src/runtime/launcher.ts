// The main thread's side of starting a container process (see setup-worker.ts for the
// other side). Sequence:
//   1. start the setup worker with the plan;
//   2. it reports "spawning": find the child (it blocks at the gate, before execve);
//   3. finish what needs the child to exist: /proc with pidns=, masked paths, rlimits;
//   4. the caller adds the child to cgroups and records state, then opens the gate.
import { Worker } from 'node:worker_threads';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { O } from '../linux/constants.js';
import { sleepSync } from '../sleep.js';
import { ENXIO } from '../linux/errno.js';
import { type Kernel, KernelError } from '../linux/kernel.js';
import { RLIMIT } from '../linux/constants.js';
import { rlimitToU64 } from '../spec/rlimit.js';
import { deserializeError, TsrunError, wrap } from '../errors.js';
import { finishRootfs, mountsAfterProc } from '../rootfs/finish.js';
import { tracer } from '../trace/tracer.js';
import { GATE_NAME, type SetupPlan, type WorkerMessage } from './protocol.js';
import { findNewChildren, procStartTime } from './proc-scan.js';
import { SYSCALL_TABLES } from '../security/seccomp/tables.js';
import { nativeArch } from '../security/seccomp/compile.js';

export interface Launched {
  pid: number;
  ptyMaster: number | null;
  /** the setup thread, still alive (inside posix_spawn) while the child waits at the gate */
  setupTid: number;
  /** resolves once the child has called execve (or rejects with why it could not) */
  started: Promise<void>;
  /** set to 1 by the setup thread when it fails (posix_spawn's error is on its way as a message) */
  failed: Int32Array;
  /**
   * resolves once the setup thread has ended. On v1 it is a task in the container's
   * cgroups until then, so removing them sooner fails with EBUSY (and a retry after a
   * 10 ms sleep).
   */
  setupEnded: Promise<void>;
}


/**
 * Why the gated child died, if it did: a step between launch() and the gate that fails
 * because the child is gone (cgroup.procs: ESRCH, say) hides the cause, which the setup
 * thread's posix_spawn reports (a file action that failed: the child's stdio, the gate
 * FIFO). Waits up to MS for that report; null if the child's start has not failed.
 */
export async function earlyFailure(l: Pick<Launched, 'started'>, ms = 200): Promise<Error | null> {
  return Promise.race([
    l.started.then(() => null, (e: unknown) => (e instanceof Error ? e : new Error(String(e)))),
    new Promise<null>((r) => setTimeout(() => r(null), ms).unref()),
  ]);
}

/**
 * Where the gated child is, from /proc/PID/syscall: 'waiting' when it blocks in the
 * gate's openat(..., O_RDONLY|O_CLOEXEC) (that flag pair is the gate's alone among its
 * file actions: stdio opens must survive execve, so they are never O_CLOEXEC); 'gone'
 * when it has exited; 'unknown' when this kernel does not say.
 */
function gateState(pid: number): 'waiting' | 'busy' | 'gone' | 'unknown' {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/syscall`, 'utf8');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'unknown';
  }
  const f = text.split(' ');
  const flags = Number(f[3]);
  return Number(f[0]) === OPENAT && (flags & O.O_CLOEXEC) !== 0 && (flags & 3) === O.O_RDONLY ? 'waiting' : 'busy';
}
const OPENAT = SYSCALL_TABLES[nativeArch()].openat!;

/**
 * Returns once the gated child blocks in its open() of the start gate: its file actions
 * (stdio, closing every other descriptor) are done, and nothing runs in it until the
 * gate opens. A `create` that reported success sooner could leave a "created" container
 * whose process then died of a file action (one a seccomp profile refused, say).
 * Throws the setup thread's error if the child dies first.
 */
export async function untilAtGate(l: Launched, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const where = gateState(l.pid);
    if (where === 'waiting' || where === 'unknown') return;
    if (where === 'gone' || Atomics.load(l.failed, 0)) return setupFailure(l.started);
    if (Date.now() > deadline) throw new TsrunError('INTERNAL', `the container process ${l.pid} did not reach the start gate`);
    sleepSync(0.1);
  }
}

/** Once the setup thread has failed or the child has gone: the setup thread's error, as it arrives. */
async function setupFailure(started: Promise<void>): Promise<never> {
  await started;
  throw new TsrunError('INTERNAL', 'the container process exited before reaching the start gate');
}

/** The gated child's pid; 0 if the setup thread failed first (its message says why). */
function waitForChild(known: Set<number>, failed: Int32Array, timeoutMs: number): number {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = findNewChildren(known);
    if (found.length > 0) return found[0]!;
    if (Atomics.load(failed, 0)) return 0;
    if (Date.now() > deadline) throw new TsrunError('INTERNAL', 'the container process did not appear after posix_spawn');
    sleepSync(0.2);
  }
}

export function workerPath(): string {
  // The bundle puts setup-worker.cjs next to tsrun.cjs.
  return join(__dirname, 'setup-worker.cjs');
}

/**
 * The setup thread started ahead of time (bin/load-bundle.cjs starts it for a
 * foreground run or a runtime create/run, before the bundle is evaluated, so that its
 * boot overlaps the bundle), once this bundle has taken it over; `ready` once it has
 * booted.
 */
let prewarmed: Worker | undefined;
let prewarmedTid = 0;
let prewarmedReady: Promise<void> = Promise.resolve();

/**
 * bin/load-bundle.cjs may have started the worker before this bundle was evaluated (it
 * loads koffi first, as above), and left it under this symbol: take it over.
 */
function adoptEarlyWorker(): boolean {
  const key = Symbol.for('tsrun.setupWorker');
  const early = (globalThis as Record<symbol, unknown>)[key] as { worker: Worker; ready: Promise<void>; tid: number } | undefined;
  if (!early) return false;
  delete (globalThis as Record<symbol, unknown>)[key];
  prewarmed = early.worker;
  prewarmedTid = early.tid;
  prewarmedReady = early.ready;
  return true;
}

/**
 * Ends a pre-started worker that was never used (the command failed early). Node's exit
 * would stop it wherever it is, and stopped inside koffi's addon initialisation it
 * aborts the whole process (FATAL ERROR ... napi_throw); so wait until it is past that
 * (it says "ready"), then terminate it.
 */
export async function retireUnusedWorker(): Promise<void> {
  if (!prewarmed) adoptEarlyWorker();
  const w = prewarmed;
  if (!w) return;
  prewarmed = undefined;
  await Promise.race([prewarmedReady, new Promise((r) => setTimeout(r, 5000).unref())]);
  await w.terminate();
}

export async function launch(k: Kernel, plan: SetupPlan, known: Set<number>): Promise<Launched> {
  const t0 = tracer.on ? tracer.now() : undefined;
  if (!prewarmed) adoptEarlyWorker();
  // No worker started ahead (exec, the monitor's launches): load koffi on this thread
  // *before* the worker loads it too. Two threads registering the addon at the same
  // moment crashed Node now and then ("FATAL ERROR: Error::ThrowAsJavaScriptException
  // napi_throw", seen under 50 parallel starts); the bin loader orders it the same way.
  if (!prewarmed) k.gettid();
  let worker = prewarmed;
  let tid = prewarmedTid;
  prewarmed = undefined;
  if (!worker) {
    // As in bin/load-bundle.cjs: the one task the constructor adds is the worker's.
    const before = new Set(readdirSync('/proc/self/task'));
    worker = new Worker(workerPath(), { workerData: null, stdout: false, stderr: false });
    const born = readdirSync('/proc/self/task').filter((t) => !before.has(t));
    tid = born.length === 1 ? Number(born[0]) : 0;
  }
  worker.ref();
  // v1: the setup thread must be in the container's cgroups before it unshares its
  // cgroup namespace. The first migration waits for an RCU grace period (10-17 ms
  // here); done from this thread, that wait overlaps the worker's own boot instead of
  // following it. The worker checks the tid and moves itself if it is not its own.
  if (tid && plan.cgroupThreadFiles?.length) {
    try {
      for (const f of plan.cgroupThreadFiles) k.writeFile(f, String(tid), 'move the setup thread into the container\'s v1 cgroup while it starts, so the cgroup namespace it unshares has that cgroup as its root');
      plan = { ...plan, movedTid: tid };
    } catch {
      /* the worker moves itself, and reports why if that fails too */
    }
  }
  let setupTid = 0;
  // Node's 'exit' comes once pthread_join returns, which the kernel allows before the
  // thread has left its cgroups (cgroup_exit runs later in do_exit); the thread's
  // /proc/self/task entry goes only when it is fully released.
  const setupEnded = new Promise<void>((res) => worker.once('exit', () => res())).then(async () => {
    for (let i = 0; i < 50 && setupTid && existsSync(`/proc/self/task/${setupTid}`); i++) await new Promise((r) => setTimeout(r, 1));
  });
  const failed = new Int32Array(new SharedArrayBuffer(4));
  worker.postMessage({ ...plan, failed: failed.buffer });
  let onSpawned!: () => void;
  let onFailed!: (e: Error) => void;
  const started = new Promise<void>((res, rej) => {
    onSpawned = res;
    onFailed = rej;
  });
  started.catch(() => {});
  const spawning = new Promise<Extract<WorkerMessage, { t: 'spawning' }>>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.t === 'ready') return;
      if (m.t === 'spawning') resolve(m);
      else if (m.t === 'spawned') onSpawned();
      else {
        const err = deserializeError(m.error);
        reject(err);
        onFailed(err);
      }
    });
    worker.on('error', (e) => {
      reject(e);
      onFailed(e);
    });
    worker.on('exit', () => {
      const e = new TsrunError('INTERNAL', 'the setup thread exited before starting the container');
      reject(e);
      onFailed(e);
    });
  });
  const msg = await spawning;
  setupTid = msg.setupTid;
  tracer.step('step', 'setup-thread', '', 'the setup thread built the container\'s namespaces and rootfs and is spawning its process', t0);
  const pid = waitForChild(known, failed, 10_000);
  if (!pid) return setupFailure(started);
  tracer.step('step', 'found-child', `pid ${pid}`, 'the container process exists and waits at the start gate, before execve');
  try {
    if (plan.mode === 'create') {
      const linux = plan.spec.linux ?? {};
      // The child opens nothing in the container before the gate (libc.ts spawn), so its
      // mounts can still be rearranged.
      finishRootfs(k, pid, { deferred: msg.deferred, remake: mountsAfterProc(plan.spec.mounts ?? []), maskedPaths: linux.maskedPaths ?? [], readonlyPaths: linux.readonlyPaths ?? [] });
    }
    // rlimits belong to a process, not a thread: set them on the waiting child with
    // prlimit(2), so tsrun's own limits never change.
    const user = plan.spec.process?.user ?? { uid: 0, gid: 0 };
    for (const r of plan.spec.process?.rlimits ?? []) {
      const set = (): void => k.prlimit(pid, RLIMIT[r.type]!, rlimitToU64(r.soft), rlimitToU64(r.hard), `${r.type} soft=${r.soft} hard=${r.hard} (process.rlimits)`);
      try {
        set();
      } catch (e) {
        if (!(e instanceof KernelError && e.code === 'EPERM' && user.uid !== 0)) throw e;
        try {
          withRealIds(k, user.uid, user.gid, set);
        } catch (e2) {
          // Raising a hard limit needs CAP_SYS_RESOURCE whoever asks.
          if (!(e2 instanceof KernelError && e2.code === 'EPERM' && e2.syscall === 'prlimit')) throw e2;
          throw new TsrunError('KERNEL_FEATURE', `cannot set ${r.type} to soft=${r.soft} hard=${r.hard} for the container: raising a hard limit needs CAP_SYS_RESOURCE, which tsrun does not have here`, {
            hint: 'give tsrun CAP_SYS_RESOURCE, or keep process.rlimits / --ulimit within tsrun\'s own hard limits', cause: e2,
          });
        }
      }
    }
    const adj = plan.spec.process?.oomScoreAdj;
    if (adj !== undefined) k.writeFile(`/proc/${pid}/oom_score_adj`, String(adj), 'process.oomScoreAdj');
  } catch (e) {
    killQuietly(k, pid);
    // A child that died of its own start (a file action failed) makes these steps fail
    // too (its /proc entries are gone): report the cause, not the symptom.
    throw (await earlyFailure({ started })) ?? wrap('preparing the container process', e);
  }
  return { pid, ptyMaster: msg.ptyMaster, setupTid: msg.setupTid, started, setupEnded, failed };
}

/**
 * Lets the gated child go on to execve. The writer's open is non-blocking, so it fails
 * with ENXIO until the child has reached its own open() of the FIFO; the child may have
 * just been cloned, so retry while it is alive. Fails if no process ever waits there.
 */
export function openGate(k: Kernel, stateDir: string, pid?: number, timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = k.open(join(stateDir, GATE_NAME), O.O_WRONLY | O.O_NONBLOCK | O.O_CLOEXEC, 0, 'open the start gate: the waiting container process continues to execve');
      k.close(fd);
      return;
    } catch (e) {
      const waiting = e instanceof KernelError && e.errno === ENXIO && pid !== undefined && procStartTime(pid) !== null;
      if (!waiting || Date.now() > deadline) {
        if (e instanceof KernelError && (e.errno === ENXIO || e.code === 'ENOENT')) {
          throw new TsrunError('STATE', 'no container process is waiting at the start gate (it was killed, or already started)', { cause: e });
        }
        throw e;
      }
      sleepSync(0.1);
    }
  }
}

/** (uid_t)-1: setres[ug]id leaves that id as it is */
const KEEP = 0xffffffff;

/**
 * prlimit(2) on another user's process needs CAP_SYS_RESOURCE, or a caller whose real
 * uid and gid are the target's, and the waiting child already runs as the container
 * user (no code of ours runs in it to set its own limits). Root without that capability
 * (some CI hosts) takes the second way: this thread's real ids become the container's
 * for the one call, while its effective and saved ids stay root, so it keeps its
 * capabilities and switches back at once. The raw syscalls change only this thread.
 */
function withRealIds(k: Kernel, uid: number, gid: number, fn: () => void): void {
  const [ruid, rgid] = [process.getuid!(), process.getgid!()];
  k.setresgid(gid, KEEP, KEEP, 'prlimit(2) without CAP_SYS_RESOURCE: this thread\'s real gid becomes the container\'s for one call');
  try {
    k.setresuid(uid, KEEP, KEEP, 'prlimit(2) without CAP_SYS_RESOURCE: this thread\'s real uid becomes the container\'s for one call (effective stays 0)');
    try {
      fn();
    } finally {
      k.setresuid(ruid, KEEP, KEEP, 'back to tsrun\'s own real uid');
    }
  } finally {
    k.setresgid(rgid, KEEP, KEEP, 'back to tsrun\'s own real gid');
  }
}

export function killQuietly(k: Kernel, pid: number): void {
  try {
    k.kill(pid, 9, 'setup failed: kill the half-made container process');
  } catch {
    /* already gone */
  }
}

// The main thread's side of starting a container process (see setup-worker.ts for the
// other side). Sequence:
//   1. start the setup worker with the plan;
//   2. it reports "spawning": find the child (it blocks at the gate, before execve);
//   3. finish what needs the child to exist: /proc with pidns=, masked paths, rlimits;
//   4. the caller adds the child to cgroups and records state, then opens the gate.
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { O } from '../linux/constants.js';
import { ENXIO } from '../linux/errno.js';
import { type Kernel, KernelError } from '../linux/kernel.js';
import { RLIMIT } from '../linux/constants.js';
import { deserializeError, TsrunError, wrap } from '../errors.js';
import { finishRootfs } from '../rootfs/finish.js';
import { tracer } from '../trace/tracer.js';
import { GATE_NAME, type SetupPlan, type WorkerMessage } from './protocol.js';
import { findNewChildren } from './proc-scan.js';

export interface Launched {
  pid: number;
  ptyMaster: number | null;
  /** resolves once the child has called execve (or rejects with why it could not) */
  started: Promise<void>;
}

const tick = new Int32Array(new SharedArrayBuffer(4));

function waitForChild(known: Set<number>, timeoutMs: number): number {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = findNewChildren(known);
    if (found.length > 0) return found[0]!;
    if (Date.now() > deadline) throw new TsrunError('INTERNAL', 'the container process did not appear after posix_spawn');
    Atomics.wait(tick, 0, 0, 0.2);
  }
}

export function workerPath(): string {
  // The bundle puts setup-worker.cjs next to tsrun.cjs.
  return join(__dirname, 'setup-worker.cjs');
}

export async function launch(k: Kernel, plan: SetupPlan, known: Set<number>): Promise<Launched> {
  const t0 = tracer.on ? tracer.now() : undefined;
  const worker = new Worker(workerPath(), { workerData: plan, stdout: false, stderr: false });
  let onSpawned!: () => void;
  let onFailed!: (e: Error) => void;
  const started = new Promise<void>((res, rej) => {
    onSpawned = res;
    onFailed = rej;
  });
  started.catch(() => {});
  const spawning = new Promise<Extract<WorkerMessage, { t: 'spawning' }>>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
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
  tracer.step('step', 'setup-thread', '', 'the setup thread built the container\'s namespaces and rootfs and is spawning its process', t0);
  const pid = waitForChild(known, 10_000);
  tracer.step('step', 'found-child', `pid ${pid}`, 'the container process exists and waits at the start gate, before execve');
  try {
    if (plan.mode === 'create') {
      const linux = plan.spec.linux ?? {};
      finishRootfs(k, pid, { deferred: msg.deferred, maskedPaths: linux.maskedPaths ?? [], readonlyPaths: linux.readonlyPaths ?? [] });
    }
    // rlimits belong to a process, not a thread: set them on the waiting child with
    // prlimit(2), so tsrun's own limits never change.
    for (const r of plan.spec.process?.rlimits ?? []) {
      k.prlimit(pid, RLIMIT[r.type]!, BigInt(r.soft), BigInt(r.hard), `${r.type} soft=${r.soft} hard=${r.hard} (process.rlimits)`);
    }
    const adj = plan.spec.process?.oomScoreAdj;
    if (adj !== undefined) k.writeFile(`/proc/${pid}/oom_score_adj`, String(adj), 'process.oomScoreAdj');
  } catch (e) {
    killQuietly(k, pid);
    throw wrap('preparing the container process', e);
  }
  return { pid, ptyMaster: msg.ptyMaster, started };
}

/** Lets the gated child go on to execve. Fails if no process waits at the gate. */
export function openGate(k: Kernel, stateDir: string): void {
  let fd: number;
  try {
    fd = k.open(join(stateDir, GATE_NAME), O.O_WRONLY | O.O_NONBLOCK | O.O_CLOEXEC, 0, 'open the start gate: the waiting container process continues to execve');
  } catch (e) {
    if (e instanceof KernelError && (e.errno === ENXIO || e.code === 'ENOENT')) {
      throw new TsrunError('STATE', 'no container process is waiting at the start gate (it was killed, or already started)', { cause: e });
    }
    throw e;
  }
  k.close(fd);
}

export function killQuietly(k: Kernel, pid: number): void {
  try {
    k.kill(pid, 9, 'setup failed: kill the half-made container process');
  } catch {
    /* already gone */
  }
}

// Where a pull's layers are unpacked: on this thread and on unpack threads
// (unpack-worker.ts), each layer on whichever has the fewest layers in hand. Creating
// files is kernel CPU time in the thread that asks, so layers unpacked side by side use
// the other cores (bench/image.mjs's 7-layer pull on 2 cores: ~725 -> ~590 ms with one
// unpack thread; two or three threads on 2 cores were no better). One thread per core
// beyond this one, at most 3; a one-layer pull starts none (a thread's ~30 ms start
// would gain nothing).
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { TsrunError, deserializeError, type SerializedError } from '../errors.js';
import { LinuxKernel } from '../linux/libc.js';
import { tracer } from '../trace/tracer.js';
import { type Compression, type UnpackResult, unpackLayer } from './unpack.js';

export type ToUnpacker =
  | { t: 'start'; id: number; dest: string; compression: Compression }
  | { t: 'data'; id: number; chunk: Uint8Array }
  | { t: 'end' | 'abort'; id: number };

export type FromUnpacker =
  | { t: 'ready' }
  | { t: 'ack'; id: number; n: number }
  | { t: 'done'; id: number; diffId: string; size: number }
  | { t: 'error'; id: number; error: SerializedError };

/** Compressed bytes posted to a thread and not yet taken by its unpack; past this the download waits. */
const MAX_IN_FLIGHT = 4 << 20;

interface Job {
  inFlight: number;
  ended: boolean;
  wake?: () => void;
  resolve(r: UnpackResult): void;
  reject(e: Error): void;
}

class UnpackThread {
  readonly jobs = new Map<number, Job>();
  /** false once the thread has failed or exited: it takes no more layers */
  alive = true;
  constructor(readonly worker: Worker) {
    worker.on('message', (m: FromUnpacker) => {
      if (m.t === 'ready') return;
      const job = this.jobs.get(m.id);
      if (!job) return;
      if (m.t === 'ack') {
        job.inFlight -= m.n;
        if (job.inFlight <= MAX_IN_FLIGHT) job.wake?.();
        return;
      }
      this.end(m.id, job);
      if (m.t === 'done') job.resolve({ diffId: m.diffId, size: m.size });
      else job.reject(deserializeError(m.error));
    });
    const lost = (why: string): void => {
      this.alive = false;
      for (const [id, job] of this.jobs) {
        this.end(id, job);
        job.reject(new TsrunError('INTERNAL', `an unpack thread ${why}`));
      }
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
  }

  /** A job begins: the thread keeps the process alive until its last job ends. */
  begin(id: number, job: Job): void {
    this.jobs.set(id, job);
    this.worker.ref();
  }

  private end(id: number, job: Job): void {
    job.ended = true;
    job.wake?.();
    this.jobs.delete(id);
    if (this.jobs.size === 0) this.worker.unref();
  }
}

export class Unpackers {
  private readonly threads: UnpackThread[] = [];
  private mainLoad = 0;
  private nextId = 1;

  /** For a pull of `layers` layers: threads besides this one, while there are cores and layers for them. */
  startThreads(layers: number): void {
    const file = join(__dirname, 'unpack-worker.cjs'); // next to the bundle (not there when tests run the sources)
    const n = Math.min(availableParallelism() - 1, layers - 1, 3) - this.threads.length;
    if (n <= 0 || !existsSync(file)) return;
    // koffi registers its addon once per thread; this thread goes first (see launcher.ts).
    new LinuxKernel().gettid();
    for (let i = 0; i < n; i++) {
      const w = new Worker(file, { workerData: { trace: tracer.mode, color: process.stderr.isTTY === true && tracer.mode !== 'json' }, stdout: false, stderr: false });
      w.unref();
      this.threads.push(new UnpackThread(w));
    }
  }

  /**
   * unpackLayer on the thread with the fewest layers in hand; on a tie an unpack thread,
   * since this one also downloads and hashes every layer. Same contract as unpackLayer:
   * `input` is left to the caller on failure.
   */
  async unpack(input: Readable, dest: string, compression: Compression): Promise<UnpackResult> {
    const t = this.threads.reduce<UnpackThread | undefined>((best, x) => (x.alive && x.jobs.size <= (best?.jobs.size ?? this.mainLoad) ? x : best), undefined);
    if (!t) {
      this.mainLoad++;
      try {
        return await unpackLayer(input, dest, { compression });
      } finally {
        this.mainLoad--;
      }
    }
    const id = this.nextId++;
    let job!: Job;
    const result = new Promise<UnpackResult>((resolve, reject) => (job = { inFlight: 0, ended: false, resolve, reject }));
    result.catch(() => undefined); // when feeding fails first, that error is the one thrown
    t.begin(id, job);
    const post = (m: ToUnpacker): void => t.worker.postMessage(m);
    post({ t: 'start', id, dest, compression });
    // Feed it without taking the stream over (as unpackLayer reads it): when the unpack
    // fails, the caller drains the rest to tell a truncated download from a corrupt one.
    const it = input.iterator({ destroyOnReturn: false });
    try {
      for await (const chunk of it) {
        if (job.ended) break;
        post({ t: 'data', id, chunk });
        job.inFlight += chunk.length;
        while (job.inFlight > MAX_IN_FLIGHT && !job.ended) await new Promise<void>((r) => (job.wake = r));
        job.wake = undefined;
      }
      if (!job.ended) post({ t: 'end', id });
    } catch (e) {
      // The download failed. Stop the thread and wait until it has let go of `dest`:
      // the caller removes it next.
      if (!job.ended) post({ t: 'abort', id });
      await result.catch(() => undefined);
      throw e;
    }
    return result;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.splice(0).map((t) => t.worker.terminate()));
  }
}

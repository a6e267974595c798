// An unpack thread (bundled as dist/unpack-worker.cjs; src/image/unpackers.ts starts it).
// Creating an inode is kernel CPU time in the thread that asks for it, and on these
// machines it is most of a pull (0.3-0.8 ms per file, directory or symlink on ext4), so
// layers unpacked here use another core. Each layer arrives as
// compressed chunks by message and goes through the same unpackLayer as on the main
// thread, with the same openat2(RESOLVE_BENEATH) checks.
import { parentPort, workerData } from 'node:worker_threads';
import { PassThrough } from 'node:stream';
import { markWorkerThread } from '../linux/libc.js';
import { TsrunError, serializeError } from '../errors.js';
import { tracer } from '../trace/tracer.js';
import { unpackLayer } from './unpack.js';
import type { ToUnpacker, FromUnpacker } from './unpackers.js';

markWorkerThread();
const init = workerData as { trace: Parameters<typeof tracer.configure>[0]; color: boolean };
tracer.configure(init.trace, { thread: 'unpack', color: init.color });

const post = (m: FromUnpacker): void => parentPort!.postMessage(m);
const jobs = new Map<number, PassThrough>();

parentPort!.on('message', (m: ToUnpacker) => {
  if (m.t === 'start') {
    // 1 MiB of compressed input waits here at most; past that, writes call back only as
    // the unpack reads, the acks stop, and the main thread pauses the download.
    const input = new PassThrough({ highWaterMark: 1 << 20 });
    jobs.set(m.id, input);
    unpackLayer(input, m.dest, { compression: m.compression }).then(
      (r) => post({ t: 'done', id: m.id, diffId: r.diffId, size: r.size }),
      (e: unknown) => post({ t: 'error', id: m.id, error: serializeError(e instanceof TsrunError ? e : new TsrunError('IMAGE', `unpacking layer: ${e instanceof Error ? e.message : String(e)}`)) }),
    ).finally(() => {
      jobs.delete(m.id);
      input.destroy();
    });
    return;
  }
  const input = jobs.get(m.id);
  if (!input) return; // the job has already ended (it failed): drop the rest
  if (m.t === 'data') input.write(m.chunk, () => post({ t: 'ack', id: m.id, n: m.chunk.byteLength }));
  else if (m.t === 'end') input.end();
  else input.destroy(new Error('the download failed'));
});
post({ t: 'ready' });

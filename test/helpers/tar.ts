// Tar archives built in memory from tar-stream headers: the unit tests of the archive
// reader and the layer unpacker use it directly, and images.ts's makeTar (the layers of
// whole test images) builds on it.
import { pack } from 'tar-stream';

export type TarHeaders = Parameters<ReturnType<typeof pack>['entry']>[0];
export type TarEntrySpec = { h: TarHeaders; body?: string | Buffer };

export async function tarOf(entries: TarEntrySpec[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((res, rej) => {
    p.on('end', () => res());
    p.on('error', rej);
  });
  // A file entry without a body would wait for a stream to be written: give it an empty one.
  for (const e of entries) {
    const body = e.body ?? (e.h.type === undefined || e.h.type === 'file' ? '' : undefined);
    if (body === undefined) p.entry(e.h);
    else p.entry(e.h, body);
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

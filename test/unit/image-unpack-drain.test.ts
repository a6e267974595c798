// The contract with pull: a failed unpack leaves the input stream to its caller, who can still drain it
// (pull reads the rest to tell a truncated download from a corrupt layer).
import { createReadStream, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { it, expect } from 'vitest';
import { gzipSync } from 'node:zlib';
import { unpackLayer } from '../../src/image/unpack.js';
it('caller can drain after failure', async () => {
  const d = mkdtempSync(join(tmpdir(), 'd2x-'));
  const h = Buffer.alloc(512); h.write('../evil', 0); h.write('0000644\0', 100); h.write('00000000000\0', 124); h.write('0', 156); h.fill(0x20, 148, 156); let s = 0; for (const b of h) s += b; h.write(s.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  for (const gz of [false, true]) {
    const raw = Buffer.concat([h, Buffer.alloc(1024), Buffer.alloc(1 << 20, 0)]);
    writeFileSync(join(d, 't'), gz ? gzipSync(raw) : raw);
    const src = createReadStream(join(d, 't'), { highWaterMark: 1024 });
    let n = 0;
    await expect(unpackLayer(src, join(d, 'l' + gz))).rejects.toThrow(/refusing/);
    src.on('data', (c) => (n += c.length));
    src.resume();
    await new Promise<void>((res) => (src.readableEnded ? res() : src.once('end', res).once('error', () => res())));
    expect(src.destroyed || src.readableEnded).toBe(true);
  }
  rmSync(d, { recursive: true });
}, 10000);

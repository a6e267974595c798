// docker's detach keys: a sequence typed into an attached terminal that ends the
// attach and leaves the container running (default ctrl-p,ctrl-q). Bytes that could be
// the start of the sequence are held back until the next byte decides; a sequence
// broken off is passed on whole, so typing ctrl-p alone still reaches the container.
import { TsrunError } from '../../errors.js';

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** "ctrl-p,ctrl-q" or "a,b": ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\, ctrl-], ctrl-^, ctrl-_, or one character. */
export function parseDetachKeys(spec: string): Buffer {
  const out: number[] = [];
  for (const key of spec.split(',')) {
    const k = key.trim().toLowerCase();
    const ctrl = /^ctrl-(.)$/.exec(k);
    if (ctrl) {
      const c = ctrl[1]!;
      if (c >= 'a' && c <= 'z') out.push(c.charCodeAt(0) - 96);
      else if ('@[\\]^_'.includes(c)) out.push(c.charCodeAt(0) - 64);
      else throw new TsrunError('USAGE', `invalid detach key "${key}"`, { hint: 'use ctrl-<a-z, @, [, \\, ], ^ or _> or a single character, comma-separated' });
    } else if (key.length === 1) {
      out.push(key.charCodeAt(0));
    } else {
      throw new TsrunError('USAGE', `invalid detach key "${key}"`, { hint: 'e.g. --detach-keys ctrl-p,ctrl-q' });
    }
  }
  if (out.length === 0) throw new TsrunError('USAGE', 'empty --detach-keys');
  return Buffer.from(out);
}

export class DetachScanner {
  private held: number[] = [];

  constructor(private readonly keys: Buffer) {}

  /** What to pass on from `chunk`, and whether the sequence was completed (the rest of the chunk is dropped, as docker does). */
  feed(chunk: Buffer): { out: Buffer; detached: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held.length]) {
        this.held.push(b);
        if (this.held.length === this.keys.length) {
          this.held = [];
          return { out: Buffer.from(out), detached: true };
        }
        continue;
      }
      if (this.held.length) {
        out.push(...this.held);
        this.held = [];
        if (b === this.keys[0]) {
          this.held.push(b);
          if (this.keys.length === 1) return { out: Buffer.from(out), detached: true };
          continue;
        }
      }
      out.push(b);
    }
    return { out: Buffer.from(out), detached: false };
  }
}

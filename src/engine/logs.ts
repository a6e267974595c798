// Container logs in docker's json-file format: one JSON object per line,
//   {"log":"hello\n","stream":"stdout","time":"2026-11-26T15:54:57.123456789Z"}
// so stdout and stderr stay apart and every line keeps the time it was read. The
// monitor writes them; `logs` reads them. Rotation (--log-opt max-size/max-file)
// renames <id>-json.log to .1, .1 to .2 ... and drops the oldest, as docker does.
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { TsrunError } from '../errors.js';

export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

export function logPath(recordDir: string, id: string): string {
  return join(recordDir, `${id}-json.log`);
}

/** docker's sizes: 10k, 10m, 1g (and bare bytes). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)b?$/i.exec(text.trim());
  if (!m) throw new TsrunError('USAGE', `invalid size "${text}"`, { hint: 'e.g. --log-opt max-size=10m' });
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * mult);
}

export function parseLogOpts(opts: string[]): { maxSize: number; maxFile: number } {
  let maxSize = 0;
  let maxFile = 1;
  for (const o of opts) {
    const [k, v] = [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)];
    if (k === 'max-size') maxSize = parseSize(v);
    else if (k === 'max-file') {
      maxFile = Number(v);
      if (!Number.isInteger(maxFile) || maxFile < 1) throw new TsrunError('USAGE', `--log-opt max-file=${v}: must be a positive integer`);
    } else throw new TsrunError('USAGE', `unknown log option "${o}"`, { hint: 'json-file knows max-size and max-file' });
  }
  if (maxFile > 1 && maxSize === 0) throw new TsrunError('USAGE', '--log-opt max-file needs max-size too (docker\'s rule)');
  return { maxSize, maxFile };
}

/** Nanosecond-precision RFC 3339 from a millisecond clock plus hrtime's finer part. */
export function nowRfc3339Nano(): string {
  const iso = new Date().toISOString(); // ...T15:54:57.123Z
  const ns = String(process.hrtime.bigint() % 1_000_000n).padStart(6, '0');
  return `${iso.slice(0, -1)}${ns}Z`;
}

export class LogWriter {
  private fd: number;
  private size: number;
  private partial: { stdout: string; stderr: string } = { stdout: '', stderr: '' };

  constructor(
    private readonly path: string,
    private readonly maxSize: number,
    private readonly maxFile: number,
  ) {
    this.fd = openSync(path, 'a', 0o640);
    this.size = statSync(path).size;
  }

  /** Splits into lines; a line without its newline waits for the rest (up to 16 KiB, docker's cut too). */
  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    let text = this.partial[stream] + chunk.toString('utf8');
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      this.entry(stream, text.slice(0, nl + 1));
      text = text.slice(nl + 1);
    }
    while (text.length > 16384) {
      this.entry(stream, text.slice(0, 16384));
      text = text.slice(16384);
    }
    this.partial[stream] = text;
  }

  flush(): void {
    for (const s of ['stdout', 'stderr'] as const) {
      if (this.partial[s]) this.entry(s, this.partial[s]);
      this.partial[s] = '';
    }
  }

  private entry(stream: 'stdout' | 'stderr', log: string): void {
    const line = JSON.stringify({ log, stream, time: nowRfc3339Nano() } satisfies LogEntry) + '\n';
    const buf = Buffer.from(line);
    if (this.maxSize > 0 && this.size > 0 && this.size + buf.length > this.maxSize) this.rotate();
    writeSync(this.fd, buf);
    this.size += buf.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    if (this.maxFile <= 1) {
      rmSync(this.path, { force: true });
    } else {
      rmSync(`${this.path}.${this.maxFile - 1}`, { force: true });
      for (let i = this.maxFile - 2; i >= 1; i--) {
        if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      }
      renameSync(this.path, `${this.path}.1`);
    }
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

function parseLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      /* a line cut by a crash mid-write: skip it */
    }
  }
  return out;
}

/** Every entry still on disk, oldest first (rotated files included). */
export function readAll(path: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = 20; i >= 1; i--) {
    if (existsSync(`${path}.${i}`)) out.push(...parseLines(readFileSync(`${path}.${i}`, 'utf8')));
  }
  if (existsSync(path)) out.push(...parseLines(readFileSync(path, 'utf8')));
  return out;
}

/** docker's --since/--until: RFC 3339, a Unix time, or a duration back from now (10m, 1h30m). */
export function parseSince(text: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const dur = /^((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)$/.exec(text);
  if (dur) {
    let ms = 0;
    for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) ms += Number(m[1]) * { h: 3600e3, m: 60e3, s: 1e3, ms: 1 }[m[2] as 'h' | 'm' | 's' | 'ms'];
    return now - ms;
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new TsrunError('USAGE', `invalid time "${text}"`, { hint: 'use RFC 3339 (2026-01-02T15:04:05Z), a Unix time, or a duration like 10m' });
  return t;
}

export interface LogReadOptions {
  tail?: number;
  sinceMs?: number;
  timestamps: boolean;
}

export function select(entries: LogEntry[], o: LogReadOptions): LogEntry[] {
  let e = o.sinceMs !== undefined ? entries.filter((x) => Date.parse(x.time) >= o.sinceMs!) : entries;
  if (o.tail !== undefined && o.tail >= 0) e = o.tail === 0 ? [] : e.slice(-o.tail);
  return e;
}

export function format(e: LogEntry, timestamps: boolean): string {
  return timestamps ? `${e.time} ${e.log}` : e.log;
}

/**
 * Follows the live log file from byte `offset` by polling: new complete lines go to
 * `onEntry`. Rotation shows up as a smaller (new) file: read from its start.
 */
export class LogFollower {
  private offset: number;
  private buf = '';
  private ino: number;

  constructor(private readonly path: string) {
    const st = existsSync(path) ? statSync(path) : null;
    this.offset = st?.size ?? 0;
    this.ino = st?.ino ?? 0;
  }

  poll(onEntry: (e: LogEntry) => void): void {
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return;
    }
    if (st.ino !== this.ino || st.size < this.offset) {
      this.ino = st.ino;
      this.offset = 0;
      this.buf = '';
    }
    if (st.size === this.offset) return;
    const fd = openSync(this.path, 'r');
    try {
      const b = Buffer.alloc(st.size - this.offset);
      const n = readSync(fd, b, 0, b.length, this.offset);
      this.offset += n;
      this.buf += b.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
    const nl = this.buf.lastIndexOf('\n');
    if (nl < 0) return;
    for (const e of parseLines(this.buf.slice(0, nl + 1))) onEntry(e);
    this.buf = this.buf.slice(nl + 1);
  }
}

/**
 * The log of a foreground `tsrun run` (docker keeps one for every container): the
 * container writes into pipes, and tsrun passes each chunk on to its own stdout or
 * stderr and into the json log, the two streams kept apart. They are anonymous pipes
 * (a FIFO would show the container a host path in /proc/self/fd/1); once tsrun closes
 * its copy of the write ends, the copy reads EOF when the container (and anything it
 * left holding its stdout) is gone.
 * With -t there are no pipes: the pty's output is logged as stdout, as docker does.
 */
export class ForegroundLog {
  private readonly writer: LogWriter;
  private readonly childEnds: number[] = [];
  private readonly readers: net.Socket[] = [];
  private readonly ended: Array<Promise<void>> = [];
  /** the fds to give the container as its stdout and stderr (none with -t) */
  readonly output?: { stdout: number; stderr: number };

  /** `pipe` makes [read end, write end], both close-on-exec; null: no pipes (-t) */
  constructor(path: string, logConfig: { maxSize: number; maxFile: number }, pipe: (() => [number, number]) | null) {
    this.writer = new LogWriter(path, logConfig.maxSize, logConfig.maxFile);
    if (pipe === null) return;
    try {
      for (const stream of ['stdout', 'stderr'] as const) {
        const [r, w] = pipe();
        this.childEnds.push(w);
        const dest = stream === 'stdout' ? process.stdout : process.stderr;
        const sock = new net.Socket({ fd: r, readable: true, writable: false });
        // Whoever reads tsrun's output went away (`tsrun run ... | head -1`): close the
        // pipe, so the container gets SIGPIPE as it would writing there directly.
        dest.on('error', () => sock.destroy());
        sock.on('data', (chunk: Buffer) => {
          this.writer.write(stream, chunk);
          if (!dest.destroyed) dest.write(chunk);
        });
        this.ended.push(new Promise((res) => {
          sock.on('end', () => res());
          sock.on('close', () => res());
          sock.on('error', () => res());
        }));
        this.readers.push(sock);
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.output = { stdout: this.childEnds[0]!, stderr: this.childEnds[1]! };
  }

  /** for -t: what the terminal shows goes to the log as stdout */
  readonly onTtyOutput = (chunk: Buffer): void => this.writer.write('stdout', chunk);

  /** After the container is gone: drain the pipes (bounded, in case something still holds them), then close the log. */
  async finish(): Promise<void> {
    for (const fd of this.childEnds.splice(0)) closeSync(fd);
    await Promise.race([Promise.all(this.ended), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.close();
  }

  private close(): void {
    for (const fd of this.childEnds.splice(0)) closeSync(fd);
    for (const s of this.readers.splice(0)) s.destroy();
    try {
      this.writer.close();
    } catch {
      /* closed already */
    }
  }
}

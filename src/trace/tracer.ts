// The tracer behind `tsrun --trace`. Every kernel wrapper, cgroup write, network change
// and image step reports here, with one line saying why it happens. When tracing is
// off, `tracer.on` is false and call sites skip building the event at all, so the
// cost is one property read per call.
import { writeSync } from 'node:fs';

export type TraceKind = 'syscall' | 'cgroup' | 'net' | 'image' | 'step';
export type TraceMode = 'off' | 'text' | 'json' | 'timing';

export interface TraceEvent {
  kind: TraceKind;
  /** syscall name, cgroup file, or step name */
  name: string;
  /** arguments already rendered for people: flags by name, paths quoted */
  args: string;
  /** "0", a value, or an errno name such as "EPERM" */
  result: string;
  why: string;
  /** milliseconds the step took */
  ms: number;
  /** which thread of tsrun made the call: main, setup (the worker that builds the container) */
  thread: string;
  failed: boolean;
}

const COLORS = { syscall: 36, cgroup: 33, net: 35, image: 34, step: 32 } as const;

export class Tracer {
  on = false;
  mode: TraceMode = 'off';
  thread = 'main';
  private fd = 2;
  private color = false;
  private readonly start = process.hrtime.bigint();
  /** Extra sinks, used by tests to capture events. */
  readonly sinks: Array<(e: TraceEvent) => void> = [];

  configure(mode: TraceMode, opts: { thread?: string; fd?: number; color?: boolean } = {}): void {
    this.mode = mode;
    this.on = mode !== 'off' || this.sinks.length > 0;
    if (opts.thread) this.thread = opts.thread;
    if (opts.fd !== undefined) this.fd = opts.fd;
    this.color = opts.color ?? false;
  }

  addSink(sink: (e: TraceEvent) => void): () => void {
    this.sinks.push(sink);
    this.on = true;
    return () => {
      this.sinks.splice(this.sinks.indexOf(sink), 1);
      this.on = this.mode !== 'off' || this.sinks.length > 0;
    };
  }

  now(): bigint {
    return process.hrtime.bigint();
  }

  emit(kind: TraceKind, name: string, args: string, result: string, why: string, since?: bigint, failed = false): void {
    const ms = since === undefined ? 0 : Number(process.hrtime.bigint() - since) / 1e6;
    const ev: TraceEvent = { kind, name, args, result, why, ms, thread: this.thread, failed };
    for (const s of this.sinks) s(ev);
    if (this.mode === 'off') return;
    let line: string;
    if (this.mode === 'json') {
      const at = Number(process.hrtime.bigint() - this.start) / 1e6;
      line = JSON.stringify({ ...ev, at: Math.round(at * 1000) / 1000 });
    } else {
      const call = `${name}(${args})`;
      const res = `= ${result}`;
      const timing = this.mode === 'timing' ? `${ms.toFixed(3).padStart(9)}ms ` : '';
      const k = kind.padEnd(7);
      const head = `${timing}${this.thread.padEnd(5)} ${k} ${call} ${res}`;
      const note = `  # ${why}`;
      if (this.color) {
        const c = COLORS[kind];
        const r = failed ? `\x1b[31m${res}\x1b[0m` : res;
        line = `${timing}\x1b[2m${this.thread.padEnd(5)}\x1b[0m \x1b[${c}m${k}\x1b[0m ${call} ${r}\x1b[2m${note}\x1b[0m`;
      } else {
        line = head.padEnd(100) + note;
      }
    }
    try {
      writeSync(this.fd, line + '\n');
    } catch {
      /* a closed stderr must not break the container */
    }
  }

  /** Records a non-syscall step (cgroup write, network change, image step). */
  step(kind: TraceKind, name: string, args: string, why: string, since?: bigint, result = 'ok'): void {
    if (this.on) this.emit(kind, name, args, result, why, since);
  }
}

export const tracer = new Tracer();

export function parseTraceMode(value: string | boolean | undefined): TraceMode {
  if (value === undefined || value === false) return 'off';
  if (value === true || value === '' || value === 'text') return 'text';
  if (value === 'json' || value === 'timing') return value;
  throw new Error(`--trace takes text, json or timing, not "${value}"`);
}

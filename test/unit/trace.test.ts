import { afterEach, describe, expect, it } from 'vitest';
import { KERNEL_METHOD_SYSCALL, SYSCALL_DOCS } from '../../src/linux/kernel.js';
import { Tracer, parseTraceMode, tracer, type TraceEvent } from '../../src/trace/tracer.js';
import { normalizeArgv } from '../../src/cli/argv.js';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('SYSCALL_DOCS', () => {
  it('every Kernel method has a default explanation, not just a name', () => {
    for (const [method, syscall] of Object.entries(KERNEL_METHOD_SYSCALL)) {
      const doc = SYSCALL_DOCS[syscall];
      expect(doc, `${method} -> ${syscall}`).toBeTypeOf('string');
      expect(doc!.split(' ').length, `${method}: "${doc}"`).toBeGreaterThanOrEqual(3);
    }
  });
});

/** A tracer writing to a temp file, so its text and json output can be read back. */
function fileTracer(mode: 'text' | 'json' | 'timing'): { t: Tracer; read: () => string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-unit-trace-'));
  const path = join(dir, 'trace');
  const fd = openSync(path, 'w');
  const t = new Tracer();
  t.configure(mode, { thread: 'setup', fd });
  return {
    t,
    read: () => readFileSync(path, 'utf8'),
    done: () => {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('Tracer', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    while (cleanups.length) cleanups.pop()!();
  });

  it('is off until configured or given a sink', () => {
    const t = new Tracer();
    expect(t.on).toBe(false);
    const remove = t.addSink(() => {});
    expect(t.on).toBe(true);
    remove();
    expect(t.on).toBe(false);
    t.configure('json');
    expect(t.on).toBe(true);
    t.configure('off');
    expect(t.on).toBe(false);
  });

  it('text: thread, kind, call with arguments, result and the why', () => {
    const f = fileTracer('text');
    cleanups.push(f.done);
    f.t.emit('syscall', 'mount', '"/a", "/b", NULL, MS_BIND', '0', 'bind the rootfs');
    f.t.emit('syscall', 'open', '"/x", O_RDONLY', 'ENOENT', 'open it', undefined, true);
    const lines = f.read().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^setup syscall mount\("\/a", "\/b", NULL, MS_BIND\) = 0 +# bind the rootfs$/);
    expect(lines[1]).toMatch(/open\("\/x", O_RDONLY\) = ENOENT +# open it$/);
    expect(lines[0]).not.toContain('\x1b[');
  });

  it('timing: the duration leads each line', () => {
    const f = fileTracer('timing');
    cleanups.push(f.done);
    f.t.emit('cgroup', 'write', '"pids.max", "10"', '0', 'limit', f.t.now());
    expect(f.read()).toMatch(/^ +\d+\.\d{3}ms setup cgroup +write\("pids\.max", "10"\) = 0/);
  });

  it('json: one object per line with every field', () => {
    const f = fileTracer('json');
    cleanups.push(f.done);
    f.t.emit('syscall', 'unshare', 'CLONE_NEWNS', '0', 'new mount namespace');
    f.t.step('image', 'pull', 'busybox', 'fetch the manifest');
    const evs = f.read().trimEnd().split('\n').map((l) => JSON.parse(l) as TraceEvent & { at: number });
    expect(evs[0]).toMatchObject({ kind: 'syscall', name: 'unshare', args: 'CLONE_NEWNS', result: '0', why: 'new mount namespace', thread: 'setup', failed: false, ms: 0 });
    expect(evs[0]!.at).toBeTypeOf('number');
    expect(evs[1]).toMatchObject({ kind: 'image', name: 'pull', result: 'ok' });
  });

  it('sinks see every event, also when the mode is off', () => {
    const t = new Tracer();
    const seen: TraceEvent[] = [];
    const remove = t.addSink((e) => seen.push(e));
    t.emit('net', 'link', 'veth0 up', '0', 'connect', undefined, false);
    t.emit('syscall', 'kill', '1, 9', 'ESRCH', 'gone', undefined, true);
    remove();
    t.emit('syscall', 'kill', '1, 9', '0', 'after');
    expect(seen.map((e) => [e.kind, e.name, e.result, e.failed])).toEqual([['net', 'link', '0', false], ['syscall', 'kill', 'ESRCH', true]]);
  });

  it('the real kernel traces its calls through the shared tracer', async () => {
    const { LinuxKernel } = await import('../../src/linux/libc.js');
    const seen: TraceEvent[] = [];
    const remove = tracer.addSink((e) => seen.push(e));
    try {
      const k = new LinuxKernel();
      expect(() => k.open('/nonexistent-tsrun-unit/x', 0)).toThrow();
      const old = k.umask(0o022);
      k.umask(old);
    } finally {
      remove();
    }
    const open = seen.find((e) => e.name === 'open')!;
    expect(open).toMatchObject({ kind: 'syscall', args: '"/nonexistent-tsrun-unit/x", O_RDONLY', result: 'ENOENT', failed: true, why: SYSCALL_DOCS.open });
    expect(seen.some((e) => e.name === 'umask')).toBe(true);
  });

  it('parseTraceMode', () => {
    expect(parseTraceMode(undefined)).toBe('off');
    expect(parseTraceMode(true)).toBe('text');
    expect(parseTraceMode('')).toBe('text');
    expect(parseTraceMode('json')).toBe('json');
    expect(parseTraceMode('timing')).toBe('timing');
    expect(() => parseTraceMode('xml')).toThrow(/text, json or timing/);
  });
});

describe('normalizeArgv', () => {
  const argv = (...a: string[]): string[] => ['node', '/usr/bin/tsrun', ...a];

  it('a bare --trace before the verb becomes --trace=text', () => {
    expect(normalizeArgv(argv('--trace', 'run', '--rootfs', '/r', 'sh'))).toEqual(argv('--trace=text', 'run', '--rootfs', '/r', 'sh'));
    expect(normalizeArgv(argv('--trace'))).toEqual(argv('--trace=text'));
  });

  it('keeps an explicit mode', () => {
    for (const m of ['text', 'json', 'timing']) expect(normalizeArgv(argv('--trace', m, 'run'))).toEqual(argv('--trace', m, 'run'));
    expect(normalizeArgv(argv('--trace=json', 'run'))).toEqual(argv('--trace=json', 'run'));
  });

  it('skips the value of --root', () => {
    expect(normalizeArgv(argv('--root', '/tmp/r', '--trace', 'run'))).toEqual(argv('--root', '/tmp/r', '--trace=text', 'run'));
  });

  it('never touches the container\'s command line', () => {
    expect(normalizeArgv(argv('run', '--rootfs', '/r', '--', 'echo', '--trace'))).toEqual(argv('run', '--rootfs', '/r', '--', 'echo', '--trace'));
    expect(normalizeArgv(argv('--trace', 'run', '--rootfs', '/r', 'prog', '--trace', 'x'))).toEqual(argv('--trace=text', 'run', '--rootfs', '/r', 'prog', '--trace', 'x'));
  });
});

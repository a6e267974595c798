// OCI bundles for driving bin/tsrun-runtime directly, as an engine (conmon, the runc
// shim) would. A bundle is `tsrun-runtime spec` (the runtime's own default config.json)
// plus per-test edits, and a busybox rootfs built at test time.
//
// Why the runner writes the runtime's stdout/stderr to files instead of pipes: after
// `create` (and `run -d`) returns, the container process still holds the stdio it was
// given. With pipes, a reader waits for EOF until the *container* exits, so a test of
// `create` would hang; runc behaves the same, which is why engines pass FIFOs or files.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxRootfs } from './rootfs.js';
import { REPO_ROOT } from './tsrun.js';

export const RUNTIME_BIN = `${REPO_ROOT}/bin/tsrun-runtime`;

// A loose view of config.json: tests edit it freely and the runtime validates it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type SpecJson = Record<string, any>;

let defaultSpecText: string | undefined;
/** `tsrun-runtime spec`, run once per test file (it is a Node start each time). */
export function runtimeDefaultSpec(): SpecJson {
  defaultSpecText ??= execFileSync(RUNTIME_BIN, ['spec'], { encoding: 'utf8' });
  return JSON.parse(defaultSpecText) as SpecJson;
}

export interface Bundle {
  dir: string;
  rootfs: string;
  /** a host dir bind-mounted read-write at /out in the container: where commands leave evidence */
  out: string;
  spec: SpecJson;
  /** rewrites config.json from `spec` (call after editing it) */
  save(): void;
}

export interface BundleOptions {
  args?: string[];
  /** edits applied to the default spec before it is written */
  edit?: (spec: SpecJson) => void;
  /** share a rootfs already built (read-only use) instead of building one */
  rootfs?: string;
}

/** Makes DIR/{config.json,rootfs,out}. The root stays read-only (the spec default); /out is the writable place. */
export function makeBundle(dir: string, opts: BundleOptions = {}): Bundle {
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'out');
  mkdirSync(out, { recursive: true });
  const rootfs = opts.rootfs ?? buildBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(rootfs, 'out'), { recursive: true });
  const spec = runtimeDefaultSpec();
  spec.root = { path: rootfs, readonly: true };
  spec.process.args = opts.args ?? ['true'];
  spec.mounts.push({ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] });
  opts.edit?.(spec);
  const b: Bundle = {
    dir, rootfs, out, spec,
    save() {
      writeFileSync(join(dir, 'config.json'), JSON.stringify(b.spec, null, 2));
    },
  };
  b.save();
  return b;
}

export interface RuntimeResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  command: string;
  /** the file that was the runtime's stdout: after `create` the container keeps writing to it */
  stdoutPath: string;
}

export interface RuntimeOptions {
  /** --root for the runtime (global flag) */
  root: string;
  /** extra global flags, before the verb (e.g. --log F --log-format json) */
  globals?: string[];
  /** a file to use as stdin (default /dev/null) */
  stdinFile?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** where to put the output files; default a fresh name under `root`'s parent */
  outDir?: string;
}

let seq = 0;
/**
 * Runs `tsrun-runtime --root ROOT [GLOBALS] ARGS...` and waits for the runtime process
 * itself to exit (not for its stdio to close: see the note at the top).
 */
export function runtime(args: string[], o: RuntimeOptions): Promise<RuntimeResult> {
  const dir = o.outDir ?? join(o.root, '..', 'rt-io');
  mkdirSync(dir, { recursive: true });
  const n = `${process.pid}-${++seq}`;
  const outPath = join(dir, `out-${n}`);
  const errPath = join(dir, `err-${n}`);
  const outFd = openSync(outPath, 'w');
  const errFd = openSync(errPath, 'w');
  const inFd = openSync(o.stdinFile ?? '/dev/null', 'r');
  const full = ['--root', o.root, ...(o.globals ?? []), ...args];
  const child = spawn(RUNTIME_BIN, full, { stdio: [inFd, outFd, errFd], env: { ...process.env, ...o.env }, cwd: REPO_ROOT });
  closeSync(outFd);
  closeSync(errFd);
  closeSync(inFd);
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs ?? 30_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({
        stdout: readFileSync(outPath, 'utf8'),
        stderr: readFileSync(errPath, 'utf8'),
        exitCode: code,
        signal,
        timedOut,
        stdoutPath: outPath,
        command: ['tsrun-runtime', ...full].join(' '),
      });
    });
  });
}

/** Reads a file the container writes later (its stdout file, or something under /out), polling. */
export async function waitForFile(path: string, re: RegExp = /[\s\S]/, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (re.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} in ${path}; it holds ${JSON.stringify(text)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Ids still known to a runtime root (the runtime keeps ROOT/containers/ID). */
export function runtimeIds(root: string): string[] {
  try {
    return readdirSync(join(root, 'containers'));
  } catch {
    return [];
  }
}

/** The inode in a /proc/PID/ns/TYPE link ("net:[4026531840]" -> "4026531840"). */
export function nsInode(link: string): string {
  return /\[(\d+)\]/.exec(link)?.[1] ?? link;
}

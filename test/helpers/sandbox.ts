// One isolated, leak-checked workspace per e2e test.
//
//   const sb = useSandbox();          // at the top of a describe (or file)
//   it('...', async () => {
//     const r = await sb.tsrun(['run', '--rootfs', sb.rootfs(), '--', 'true']);
//     expect(r.exitCode).toBe(0);
//   });
//
// Before each test it creates one temp dir holding the test's TSRUN_ROOT (state/),
// tsrun's TMPDIR (tmp/) and whatever rootfs or files the test makes. After each test
// it asserts that nothing the test started outlived it: no mount or process that
// mentions the temp dir, no container state under TSRUN_ROOT, no cgroup named after
// one of its containers, nothing in TMPDIR; then
// removes the dir (detaching mounts first) and asserts that it is gone.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { buildBusyboxRootfs, type BuildRootfsOptions } from './rootfs.js';
import { TempDirs } from './tempdirs.js';
import { LeakChecker, describeLeaks, type LeakSnapshot } from './leaks.js';
import { runTsrun, spawnTsrun, type TsrunOptions, type TsrunResult } from './tsrun.js';

export type SandboxRunOptions = Omit<TsrunOptions, 'root' | 'tmpdir'>;

export interface Sandbox {
  /** this test's temp dir; everything below is inside it */
  readonly dir: string;
  /** TSRUN_ROOT for every tsrun this test runs */
  readonly root: string;
  /** TMPDIR for tsrun; must be empty after the test */
  readonly tmp: string;
  /** A busybox rootfs at dir/NAME (default "rootfs"), built on first use. */
  rootfs(name?: string, opts?: BuildRootfsOptions): string;
  /** A fresh directory dir/NAME. */
  mkdir(name: string): string;
  /** Writes dir/NAME and returns its path. */
  writeFile(name: string, text: string, mode?: number): string;
  /** Runs `tsrun ARGS...` with this test's TSRUN_ROOT and TMPDIR. */
  tsrun(args: string[], opts?: SandboxRunOptions): Promise<TsrunResult>;
  /** `tsrun run --rootfs ROOTFS FLAGS... -- CMD...` on the default rootfs. */
  run(cmd: string[], flags?: string[], opts?: SandboxRunOptions): Promise<TsrunResult>;
  /** Starts tsrun in the background (see spawnTsrun). */
  spawn(args: string[], opts?: SandboxRunOptions & { stdin?: 'pipe' | 'ignore' }): ReturnType<typeof spawnTsrun>;
  /** The leak checker, to watch more paths (e.g. a host dir outside `dir`). */
  readonly leaks: LeakChecker;
}

export function useSandbox(): Sandbox {
  let temps: TempDirs;
  let leaks: LeakChecker;
  let before: LeakSnapshot;
  let dir = '';
  const built = new Map<string, string>();

  const sb: Sandbox = {
    get dir() {
      return dir;
    },
    get root() {
      return join(dir, 'state');
    },
    get tmp() {
      return join(dir, 'tmp');
    },
    get leaks() {
      return leaks;
    },
    rootfs(name = 'rootfs', opts) {
      let p = built.get(name);
      if (!p) {
        p = buildBusyboxRootfs(join(dir, name), opts);
        built.set(name, p);
      }
      return p;
    },
    mkdir(name) {
      const p = join(dir, name);
      mkdirSync(p, { recursive: true });
      return p;
    },
    writeFile(name, text, mode = 0o644) {
      const p = join(dir, name);
      writeFileSync(p, text, { mode });
      return p;
    },
    tsrun(args, opts = {}) {
      return runTsrun(args, { ...opts, root: sb.root, tmpdir: sb.tmp });
    },
    run(cmd, flags = [], opts = {}) {
      return sb.tsrun(['run', '--rootfs', sb.rootfs(), ...flags, '--', ...cmd], opts);
    },
    spawn(args, opts = {}) {
      return spawnTsrun(args, { ...opts, root: sb.root, tmpdir: sb.tmp });
    },
  };

  beforeEach(() => {
    temps = new TempDirs();
    built.clear();
    dir = temps.make('t');
    mkdirSync(join(dir, 'tmp'));
    leaks = new LeakChecker().watchPath(dir).watchStateRoot(join(dir, 'state')).watchEmptyDir(join(dir, 'tmp'));
    before = leaks.snapshot();
  });

  afterEach(async () => {
    const found = await leaks.findLeaks(before);
    leaks.close();
    leaks.cleanUp(found);
    const left = temps.removeAll();
    expect(describeLeaks(found), 'the test left these behind').toBe('');
    expect(left, 'temp dirs that could not be removed').toEqual([]);
  });

  return sb;
}

/** /proc/self/status lines as a map: "CapEff" -> "00000000a80425fb". */
export function parseStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** What expectExit needs: a TsrunResult, or an execa result from a spawned tsrun. */
export interface ExitLike {
  exitCode?: number | undefined;
  stdout?: unknown;
  stderr?: unknown;
  timedOut?: boolean;
  command?: string;
}

/** Fails with tsrun's stderr in the message, which is what one needs to see when it breaks. */
export function expectExit(r: ExitLike, code: number): void {
  expect(r.timedOut ?? false, `timed out: ${r.command}`).toBe(false);
  expect(r.exitCode, `exit status of ${r.command}\nstdout: ${String(r.stdout)}\nstderr: ${String(r.stderr)}`).toBe(code);
}

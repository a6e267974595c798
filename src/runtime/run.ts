// Running a container in the foreground: the core of `tsrun run`. Takes a validated
// OCI spec and a rootfs; returns the exit status docker would (128+N for signal N).
import { mkfifoSync } from './fifo.js';
import { readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import tty from 'node:tty';
import { TIOCSWINSZ } from '../linux/constants.js';
import { type Kernel, type SpawnStdio, KernelError } from '../linux/kernel.js';
import { TsrunError, wrap } from '../errors.js';
import type { Spec } from '../spec/types.js';
import type { OverlayLayers } from '../overlay/mount.js';
import { tracer } from '../trace/tracer.js';
import { lastCap } from '../security/capabilities.js';
import { earlyFailure, killQuietly, launch, openGate } from './launcher.js';
import { GATE_NAME } from './protocol.js';
import { procStartTime } from './proc-scan.js';
import { type OciState, type OciStatus, type Paths, collectGarbage, createStateDir, ociStateOf, ownerNow, writeJson } from './state.js';
import { runHooks } from './hooks.js';
import { ContainerCgroup } from '../cgroups/container.js';
import { attachmentFromSpec, type NetworkAttachment } from '../network/attach.js';

export interface RunRequest {
  id: string;
  spec: Spec;
  rootfs: string;
  bundle: string;
  paths: Paths;
  /** an image's layers to stack at `rootfs` (which is then an empty mount point) */
  overlay?: OverlayLayers;
  /** -i: pass tsrun's stdin through; otherwise the container reads /dev/null */
  interactive: boolean;
  preserveFds?: number;
  /**
   * networking (issue 7): prepare() before launch, attach(pid) while the child waits at
   * its gate, release() when it is gone. Default: what the spec's io.tsrun.network
   * annotation asks for (none for a plain OCI spec).
   */
  network?: Pick<NetworkAttachment, 'prepare' | 'attach' | 'release'>;
  /** lifecycle (issue 5): parent fds for the container's stdout and stderr (default tsrun's own 1 and 2), e.g. pipes tsrun copies into the log */
  output?: { stdout: number; stderr: number };
  /** lifecycle (issue 5): also sees what the container writes to its terminal (-t), e.g. for its log */
  onTtyOutput?: (chunk: Buffer) => void;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15, SIGWINCH: 28 };

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new TsrunError('NOT_ROOT', 'tsrun needs root (or CAP_SYS_ADMIN) to create namespaces', { hint: 'run it with sudo' });
  }
}

/** Waits for a child that libuv does not know (posix_spawn made it): SIGCHLD, then waitid. */
export function waitExit(k: Kernel, pid: number): Promise<number> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(check, 1000);
    function check(): void {
      let r;
      try {
        r = k.wait(pid, true);
      } catch (e) {
        // ECHILD: someone reaped it already (glibc's posix_spawn does, for a child that
        // failed before execve). Its status is lost; 127 is what that child exited with.
        if (!(e instanceof KernelError && e.code === 'ECHILD')) throw e;
        r = { pid, code: 127, signal: null };
      }
      if (!r) return;
      process.removeListener('SIGCHLD', check);
      clearInterval(keepAlive);
      resolve(r.code ?? 128 + (r.signal ?? 0));
    }
    process.on('SIGCHLD', check);
    check();
  });
}

/** How a foreground container ended: its exit status, and whether the OOM killer ended it (told by its cgroup, not by the status). */
export interface RunResult {
  code: number;
  oomKilled: boolean;
}

export async function runForeground(k: Kernel, req: RunRequest): Promise<RunResult> {
  requireRoot();
  collectGarbage(k, req.paths);
  const spec = req.spec;
  const wantTty = spec.process?.terminal === true;
  const dir = createStateDir(req.paths, req.id);
  // cgroups (issue 4): the path goes into the first state write, before the cgroup
  // exists, so collectGarbage can remove it after a kill -9 at any later point.
  const cgroup = new ContainerCgroup(k, req.id, spec);
  const state = { id: req.id, owner: ownerNow(), status: 'creating' as const, bundle: req.bundle, rootfs: req.rootfs, created: new Date().toISOString(), cgroupsPath: cgroup.path };
  let pid: number | undefined;
  let restoreTty: (() => void) | undefined;
  let network: RunRequest['network']; // networking (issue 7)
  try {
    writeJson(join(dir, 'state.json'), state);
    network = req.network ?? attachmentFromSpec(spec, req.paths, req.id);
    await network?.prepare(); // ports reserved, /etc files written: a busy port fails here
    mkfifoSync(k, join(dir, GATE_NAME));
    cgroup.create(); // cgroups (issue 4)
    const stdio: SpawnStdio[] = [
      req.interactive ? { fd: 0, from: { parentFd: 0 } } : { fd: 0, from: { path: '/dev/null', flags: 0 } },
      { fd: 1, from: { parentFd: req.output?.stdout ?? 1 } },
      { fd: 2, from: { parentFd: req.output?.stderr ?? 2 } },
    ];
    const size = process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : { rows: 24, cols: 80 };
    const launched = await launch(
      k,
      {
        mode: 'create', spec: await cgroup.setupSpec() /* cgroups (issue 4) */, rootfs: req.rootfs, overlay: req.overlay, bundle: req.bundle, stateDir: dir,
        tty: wantTty ? size : null, stdio, preserveFds: req.preserveFds ?? 0,
        trace: tracer.mode, color: process.stderr.isTTY === true,
        lastCap: lastCap(() => readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')),
        cgroupThreadFiles: cgroup.threadFiles(),
      },
      cgroup.ownChildren(), // cgroups (issue 4): the v2 namespace holder is no container process
    );
    pid = launched.pid;
    try {
      cgroup.attach(pid, launched.setupTid); // cgroups (issue 4): limits, then the gated child, before execve
      network?.attach(pid); // networking (issue 7): veth, address, routes, rules, before execve
    } catch (e) {
      throw (await earlyFailure(launched)) ?? e;
    }
    writeJson(join(dir, 'state.json'), { ...state, status: 'created', pid, pidStart: procStartTime(pid) });
    // OCI hooks, as `create` and `start` run them (lifecycle.ts); the engine's specs have none.
    const container = { ociVersion: spec.ociVersion, id: req.id, pid, bundle: req.bundle, annotations: spec.annotations ?? {}, created: state.created };
    const hookState = (status: OciStatus): OciState => ociStateOf(container, status);
    runHooks(spec, 'prestart', hookState('created'));
    runHooks(spec, 'createRuntime', hookState('created'));
    runHooks(spec, 'createContainer', hookState('created'), { k, pid });
    runHooks(spec, 'startContainer', hookState('created'), { k, pid });
    const exit = waitExit(k, pid);
    for (const s of FORWARDED) process.on(s, () => forward(k, pid!, s));
    if (launched.ptyMaster !== null) restoreTty = attachTty(k, launched.ptyMaster, req.interactive, req.onTtyOutput);
    else process.on('SIGWINCH', () => forward(k, pid!, 'SIGWINCH'));
    openGate(k, dir, pid);
    try {
      await launched.started;
    } catch (e) {
      // execve failed in the child (glibc's child then exits 127); report why.
      await exit;
      throw e;
    }
    writeJson(join(dir, 'state.json'), { ...state, status: 'running', pid, pidStart: procStartTime(pid) });
    runHooks(spec, 'poststart', hookState('running'));
    const code = await exit;
    if (restoreTty) await drainTty();
    // The setup thread keeps the v1 cgroups busy until it is gone (launcher.ts); bounded,
    // since finish() retries anyway.
    await Promise.race([launched.setupEnded, new Promise((r) => setTimeout(r, 200).unref())]);
    // cgroups (issue 4): an OOM kill is told by the cgroup, not by the exit status.
    const oomKilled = cgroup.finish();
    runHooks(spec, 'poststop', hookState('stopped'));
    return { code, oomKilled };
  } catch (e) {
    if (pid !== undefined) killQuietly(k, pid);
    try {
      cgroup.remove(); // cgroups (issue 4): no half-made container
    } catch {
      /* collectGarbage retries from the state's cgroupsPath */
    }
    throw wrap('starting container', e);
  } finally {
    restoreTty?.();
    try {
      network?.release(); // networking (issue 7)
    } catch {
      /* collectNetworkGarbage retries once this process is gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function forward(k: Kernel, pid: number, sig: string): void {
  try {
    k.kill(pid, SIGNUM[sig]!, `forward ${sig} that tsrun received to the container`);
  } catch {
    /* the container is already gone */
  }
}

let drain: Promise<void> = Promise.resolve();
export function drainTty(): Promise<void> {
  return Promise.race([drain, new Promise<void>((r) => setTimeout(r, 1000).unref())]);
}

/** Connects the caller's terminal to the container's pty: raw mode, output, input, window size. */
export function attachTty(k: Kernel, master: number, interactive: boolean, onOutput?: (chunk: Buffer) => void): () => void {
  const out = new tty.ReadStream(master);
  if (onOutput) out.on('data', onOutput);
  drain = new Promise((resolve) => {
    out.on('error', () => resolve()); // EIO: every holder of the pty slave is gone
    out.on('end', () => resolve());
    out.on('close', () => resolve());
  });
  out.pipe(process.stdout, { end: false });
  const stdin = process.stdin;
  const raw = interactive && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  const onData = (chunk: Buffer): void => {
    let off = 0;
    while (off < chunk.length) {
      try {
        off += writeSync(master, chunk, off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  };
  if (interactive) {
    stdin.on('data', onData);
    stdin.resume();
  }
  const resize = (): void => {
    if (!process.stdout.isTTY) return;
    const ws = Buffer.alloc(8);
    ws.writeUInt16LE(process.stdout.rows, 0);
    ws.writeUInt16LE(process.stdout.columns, 2);
    try {
      k.ioctl(master, TIOCSWINSZ, ws, 'pass the new window size on; the kernel sends SIGWINCH to the container');
    } catch {
      /* gone */
    }
  };
  process.on('SIGWINCH', resize);
  return () => {
    process.removeListener('SIGWINCH', resize);
    if (raw) stdin.setRawMode(false);
    stdin.removeListener('data', onData);
    stdin.pause();
    out.destroy();
  };
}

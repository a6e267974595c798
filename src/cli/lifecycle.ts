// docker's container verbs: run -d, create, start, ps, logs, exec, stop, kill, rm,
// wait, restart, pause, unpause, top, inspect, attach, cp, rename, container prune.
// Detached containers live under the shared monitor (src/engine/monitor); foreground
// ones in the `tsrun run` process. Both leave a record (src/engine/containers.ts).
import { processesInPidns } from '../runtime/proc-scan.js';
import { execFileSync } from 'node:child_process';
import { constants as FS, existsSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { LinuxKernel } from '../linux/libc.js';
import type { Kernel } from '../linux/kernel.js';
import { OOM_MESSAGE } from '../cgroups/container.js';
import { removeStaleCgroup } from '../cgroups/manager.js';
import { type RunRequest, type RunResult, attachTty, drainTty, requireRoot, runForeground } from '../runtime/run.js';
import { type Paths, collectGarbage, resolvePaths, stateDir } from '../runtime/state.js';
import { ImageStore } from '../image/store.js';
import type { Spec } from '../spec/types.js';
import {
  type HealthConfig, type Observed, type Record, createRecord, listRecords, loadContainer, observe, parseRestart, readRecord,
  recordDir, removeRecord, renameRecord, repairIfOrphaned, resolveContainer, updateState,
} from '../engine/containers.js';
import { ForegroundLog, LogFollower, format, logPath, parseLogOpts, parseSince, readAll, select } from '../engine/logs.js';
import { attachTerminal, callMonitor } from '../engine/monitor/client.js';
import { DEFAULT_DETACH_KEYS, DetachScanner, parseDetachKeys } from '../engine/monitor/detach-keys.js';
import { startExec } from '../engine/monitor/exec.js';
import { copyPaths } from '../engine/monitor/copy.js';
import { parseSignal } from './signals.js';
import type { GlobalOptions } from './main.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const TINI_PATHS = ['/usr/bin/tini-static', '/usr/bin/docker-init'];

// ---------------------------------------------------------------------------------
// run: the flags it gains, and what it does with a built spec.

export interface LifecycleRunFlags {
  detach?: boolean;
  attach?: string[];
  restart?: string;
  logOpt: string[];
  init?: boolean;
  stopSignal?: string;
  stopTimeout?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthcheck?: boolean;
  name?: string;
  rm?: boolean;
  tty?: boolean;
}

/** Adds run -d and friends to `run` (and so to `create`). */
export function addLifecycleRunOptions(cmd: Command): Command {
  return cmd
    .option('-d, --detach', 'run in the background under the tsrun monitor and print the container ID', false)
    .option('-a, --attach <stream>', 'attach STDOUT/STDERR/STDIN (the default for a foreground run; all are attached)', collect, [])
    .option('--restart <policy>', 'no, on-failure[:N], always or unless-stopped', 'no')
    .option('--log-opt <opt>', 'json-file log options: max-size=10m, max-file=3', collect, [])
    .option('--init', 'run tini as PID 1: it reaps zombies and forwards signals', false)
    .option('--stop-signal <sig>', 'the signal that stop sends first (default: the image\'s StopSignal or SIGTERM)')
    .option('--stop-timeout <seconds>', 'seconds stop waits before SIGKILL (default 10)')
    .option('--health-cmd <cmd>', 'a command that checks health (run with /bin/sh -c)')
    .option('--health-interval <duration>', 'time between health checks (default 30s)')
    .option('--health-timeout <duration>', 'maximum time for one check (default 30s)')
    .option('--health-retries <n>', 'failures in a row before unhealthy (default 3)')
    .option('--health-start-period <duration>', 'time to start before failures count (default 0s)')
    .option('--no-healthcheck', 'disable any HEALTHCHECK of the image');
}

function parseDuration(flag: string, text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  if (!/^((\d+(\.\d+)?)(ms|h|m|s))+$/.test(text)) throw new TsrunError('USAGE', `${flag} ${text}: invalid duration`, { hint: 'e.g. 30s, 1m30s, 500ms' });
  for (const m of text.matchAll(re)) ms += Number(m[1]) * { h: 3600e3, m: 60e3, s: 1e3, ms: 1 }[m[2] as 'h' | 'm' | 's' | 'ms'];
  return ms;
}

interface ImageConfigExtras {
  StopSignal?: string;
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; Retries?: number; StartPeriod?: number };
}

/** The image's StopSignal and Healthcheck, when the container comes from an image. */
function imageExtras(root: string, id: string): { name: string; extras: ImageConfigExtras } | null {
  try {
    const info = JSON.parse(readFileSync(`${root}/containers/${id}/image.json`, 'utf8')) as { image: string; ref: string };
    const rec = new ImageStore(root).getImage(info.image);
    return { name: info.ref, extras: (rec?.config.config ?? {}) as ImageConfigExtras };
  } catch {
    return null;
  }
}

function healthFrom(o: LifecycleRunFlags, img: ImageConfigExtras | undefined): HealthConfig | undefined {
  if (o.healthcheck === false) return undefined;
  const ih = img?.Healthcheck;
  const test = o.healthCmd ? ['CMD-SHELL', o.healthCmd] : ih?.Test;
  if (!test || test.length === 0 || test[0] === 'NONE') return undefined;
  // Image durations are nanoseconds (docker's config); 0 means the default.
  const ns = (v: number | undefined, d: number): number => (v ? v / 1e6 : d);
  return {
    test,
    intervalMs: parseDuration('--health-interval', o.healthInterval, ns(ih?.Interval, 30_000)),
    timeoutMs: parseDuration('--health-timeout', o.healthTimeout, ns(ih?.Timeout, 30_000)),
    retries: o.healthRetries !== undefined ? Number(o.healthRetries) : ih?.Retries || 3,
    startPeriodMs: parseDuration('--health-start-period', o.healthStartPeriod, ns(ih?.StartPeriod, 0)),
  };
}

/** --init: tini bound in read-only at /sbin/docker-init, as PID 1 in front of the command. */
function addInit(spec: Spec): void {
  const tini = TINI_PATHS.find((p) => existsSync(p));
  if (!tini) throw new TsrunError('USAGE', '--init needs a static tini on the host', { hint: 'apt-get install tini (it ships /usr/bin/tini-static)' });
  spec.mounts = [...(spec.mounts ?? []), { destination: '/sbin/docker-init', type: 'bind', source: tini, options: ['bind', 'ro', 'nosuid', 'nodev'] }];
  spec.process!.args = ['/sbin/docker-init', '--', ...spec.process!.args];
}

/** What runForeground needs of the container, plus what the engine adds around it. */
export interface RunContainerRequest extends Pick<RunRequest, 'id' | 'spec' | 'rootfs' | 'bundle' | 'paths' | 'overlay' | 'interactive'> {
  /** `create`: stop after the record (print the id) */
  createOnly?: boolean;
  /** the image reference, --rootfs dir or --bundle dir, as given */
  source: string;
  opts: LifecycleRunFlags;
  rootFlag?: string;
  /** removes what the image path made (the container dir), for --rm and failures */
  cleanup?: () => void;
}

/** Takes over after `run` built the spec: a record, then foreground, detached, or create-only. */
export async function runContainer(k: Kernel, req: RunContainerRequest): Promise<number> {
  const o = req.opts;
  const detach = o.detach || !!req.createOnly;
  for (const a of o.attach ?? []) {
    if (!/^(stdin|stdout|stderr)$/i.test(a)) throw new TsrunError('USAGE', `invalid -a ${a}: use STDIN, STDOUT or STDERR`);
  }
  if (o.detach && o.attach?.length) throw new TsrunError('USAGE', 'conflicting options: -a and -d');
  if (o.rm && o.restart && o.restart !== 'no') throw new TsrunError('USAGE', 'conflicting options: --restart and --rm');
  const restartPolicy = parseRestart(o.restart);
  const logConfig = { type: 'json-file' as const, ...parseLogOpts(o.logOpt) };
  if (o.init) addInit(req.spec);
  const img = imageExtras(req.paths.root, req.id);
  const stopSignal = o.stopSignal ?? img?.extras.StopSignal ?? 'SIGTERM';
  parseSignal(stopSignal);
  const rec = createRecord(req.paths, {
    id: req.id, name: o.name, created: new Date().toISOString(), image: img?.name ?? req.source,
    path: req.spec.process!.args[0]!, args: req.spec.process!.args.slice(1), spec: req.spec, rootfs: req.rootfs, bundle: req.bundle,
    ...(req.overlay ? { overlay: req.overlay } : {}),
    foreground: !detach, ...(detach && req.interactive ? { openStdin: true } : {}), stopSignal, stopTimeout: o.stopTimeout !== undefined ? Number(o.stopTimeout) : 10,
    ...(detach ? { healthcheck: healthFrom(o, img?.extras) } : {}),
    hostConfig: { autoRemove: !!o.rm, restartPolicy, logConfig, init: !!o.init },
    state: { restartCount: 0 },
  });
  if (req.createOnly) {
    process.stdout.write(`${rec.id}\n`);
    return 0;
  }
  if (detach) {
    try {
      await callMonitor(req.paths, { op: 'start', id: rec.id }, { start: true, rootFlag: req.rootFlag });
    } catch (e) {
      // docker keeps a container that failed to start (status created, its error recorded);
      // with --rm it goes.
      if (o.rm) removeRecord(req.paths, rec.id);
      throw e;
    }
    process.stdout.write(`${rec.id}\n`);
    return 0;
  }
  updateState(req.paths, rec.id, (s) => {
    s.startedAt = new Date().toISOString();
  });
  // docker logs every container, foreground ones too. With --rm nobody could read the
  // log, so there the container writes straight to tsrun's stdout and stderr (no copy).
  const terminal = req.spec.process?.terminal === true;
  const flog = o.rm ? undefined : new ForegroundLog(logPath(recordDir(req.paths, rec.id), rec.id), logConfig,
    terminal ? null : () => k.pipe('the container\'s output: tsrun copies it to its own and into the log'));
  let result: RunResult;
  try {
    result = await runForeground(k, {
      id: req.id, spec: req.spec, rootfs: req.rootfs, bundle: req.bundle, paths: req.paths, overlay: req.overlay, interactive: req.interactive,
      ...(flog?.output ? { output: flog.output } : {}), ...(flog && terminal ? { onTtyOutput: flog.onTtyOutput } : {}),
    });
  } catch (e) {
    await flog?.finish();
    const c = e instanceof TsrunError ? e.exitCode : 125;
    finishForeground(req, c, false, (e as Error).message);
    throw e;
  }
  await flog?.finish();
  finishForeground(req, result.code, result.oomKilled);
  if (result.oomKilled) process.stderr.write(`tsrun: ${OOM_MESSAGE}\n`);
  return result.code;
}

function finishForeground(req: RunContainerRequest, code: number, oomKilled: boolean, error?: string): void {
  if (req.opts.rm) {
    removeRecord(req.paths, req.id);
    req.cleanup?.();
    return;
  }
  updateState(req.paths, req.id, (s) => {
    s.finishedAt = new Date().toISOString();
    s.exitCode = code;
    s.oomKilled = oomKilled;
    if (error) s.error = error;
  });
}

// ---------------------------------------------------------------------------------
// Presentation

function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 1) return 'Less than a second';
  if (s < 60) return s === 1 ? '1 second' : `${s} seconds`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? 'About a minute' : `${m} minutes`;
  const h = Math.round(m / 60);
  if (h < 48) return h === 1 ? 'About an hour' : `${h} hours`;
  return `${Math.round(h / 24)} days`;
}

function statusText(r: Record, o: Observed): string {
  const health = r.state.health && o.status === 'running' ? ` (${r.state.health.status === 'starting' ? 'health: starting' : r.state.health.status})` : '';
  switch (o.status) {
    case 'running':
      return `Up ${ago(r.state.startedAt)}${health}`;
    case 'paused':
      return `Up ${ago(r.state.startedAt)} (Paused)`;
    case 'restarting':
      return `Restarting (${r.state.exitCode ?? 0}) ${ago(r.state.finishedAt)} ago`;
    case 'created':
      return 'Created';
    default:
      return `Exited (${r.state.exitCode ?? 255}) ${ago(r.state.finishedAt)} ago`;
  }
}

function commandText(r: Record, trunc: boolean): string {
  const c = [r.path, ...r.args].join(' ');
  return `"${trunc && c.length > 20 ? `${c.slice(0, 19)}…` : c}"`;
}

function inspectObject(p: Paths, r: Record): object {
  const o = observe(p, r);
  const proc = r.spec.process!;
  return {
    Id: r.id,
    Created: r.created,
    Path: r.path,
    Args: r.args,
    State: {
      Status: o.status,
      Running: o.status === 'running' || o.status === 'paused',
      Paused: o.status === 'paused',
      Restarting: o.status === 'restarting',
      OOMKilled: !!r.state.oomKilled,
      Dead: false,
      Pid: o.pid,
      ExitCode: o.status === 'running' || o.status === 'created' ? 0 : r.state.exitCode ?? 0,
      ExitCodeUnknown: !!r.state.exitUnknown,
      Error: r.state.error ?? '',
      StartedAt: r.state.startedAt ?? '0001-01-01T00:00:00Z',
      FinishedAt: r.state.finishedAt ?? '0001-01-01T00:00:00Z',
      ...(r.state.health ? { Health: { Status: r.state.health.status, FailingStreak: r.state.health.failingStreak, Log: r.state.health.log.map((l) => ({ Start: l.start, End: l.end, ExitCode: l.exitCode, Output: l.output })) } } : {}),
    },
    Image: r.image,
    LogPath: logPath(recordDir(p, r.id), r.id),
    Name: `/${r.name}`,
    RestartCount: r.state.restartCount,
    Driver: r.overlay ? 'overlay' : 'rootfs',
    HostConfig: {
      AutoRemove: r.hostConfig.autoRemove,
      RestartPolicy: { Name: r.hostConfig.restartPolicy.name, MaximumRetryCount: r.hostConfig.restartPolicy.maximumRetryCount },
      LogConfig: { Type: 'json-file', Config: { ...(r.hostConfig.logConfig.maxSize ? { 'max-size': String(r.hostConfig.logConfig.maxSize) } : {}), ...(r.hostConfig.logConfig.maxFile > 1 ? { 'max-file': String(r.hostConfig.logConfig.maxFile) } : {}) } },
      Init: r.hostConfig.init,
      ReadonlyRootfs: r.spec.root?.readonly === true,
      Privileged: false,
      CapAdd: null,
      CapDrop: null,
    },
    Mounts: (r.spec.mounts ?? []).filter((m) => m.type === 'bind' || (m.options ?? []).includes('bind')).filter((m) => m.destination !== '/sbin/docker-init').map((m) => ({
      Type: 'bind', Source: m.source, Destination: m.destination, Mode: (m.options ?? []).includes('ro') ? 'ro' : '', RW: !(m.options ?? []).includes('ro'), Propagation: 'rprivate',
    })),
    Config: {
      Hostname: r.spec.hostname ?? '',
      User: proc.user.uid === 0 && proc.user.gid === 0 ? '' : `${proc.user.uid}:${proc.user.gid}`,
      Tty: proc.terminal === true,
      Env: proc.env ?? [],
      Cmd: [r.path, ...r.args],
      Image: r.image,
      WorkingDir: proc.cwd,
      StopSignal: r.stopSignal,
      StopTimeout: r.stopTimeout,
      ...(r.healthcheck ? { Healthcheck: { Test: r.healthcheck.test, Interval: r.healthcheck.intervalMs * 1e6, Timeout: r.healthcheck.timeoutMs * 1e6, Retries: r.healthcheck.retries, StartPeriod: r.healthcheck.startPeriodMs * 1e6 } } : {}),
    },
  };
}

/** A small subset of Go templates: {{.A.B}}, {{json .A}}, {{.A.B}} with literal text around. */
export function renderTemplate(tpl: string, obj: unknown): string {
  return tpl.replace(/\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}/g, (_m, json: string | undefined, path: string) => {
    let v: unknown = obj;
    for (const k of path.split('.').filter(Boolean)) v = v && typeof v === 'object' ? (v as { [k: string]: unknown })[k] : undefined;
    if (json) return JSON.stringify(v ?? null);
    if (v === undefined || v === null) return '<no value>';
    if (typeof v === 'object') return Array.isArray(v) ? `[${v.join(' ')}]` : JSON.stringify(v);
    return String(v);
  }).replace(/\\n/g, '\n');
}

// ---------------------------------------------------------------------------------
// Verbs

interface Ctx {
  k: Kernel;
  paths: Paths;
  rootFlag?: string;
}

function ctxOf(cmd: Command): Ctx {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  const g = root.opts<GlobalOptions>();
  return { k: new LinuxKernel(), paths: resolvePaths(g.root), rootFlag: g.root };
}

/** Every argument is tried; docker prints the ones that worked and an error per failure, then exits 1. */
async function forEach(refs: string[], f: (ref: string) => Promise<void>, parallel = false): Promise<void> {
  let failed = null as TsrunError | null;
  const report = (e: unknown): void => {
    if (refs.length === 1) throw e;
    process.stderr.write(`tsrun: ${(e as Error).message}\n`);
    failed = e instanceof TsrunError ? e : new TsrunError('INTERNAL', String(e));
  };
  if (parallel) {
    // docker stops and removes many containers at once; the monitor serves them together.
    for (const r of await Promise.allSettled(refs.map((ref) => f(ref)))) if (r.status === 'rejected') report(r.reason);
  } else {
    for (const ref of refs) {
      try {
        await f(ref);
      } catch (e) {
        report(e);
      }
    }
  }
  if (failed) throw new TsrunError(failed.code, `failed on ${refs.length > 1 ? 'some containers' : 'the container'}`);
}

function stateOf(c: Ctx, ref: string): { r: Record; o: Observed } {
  let r = loadContainer(c.paths, ref);
  r = repairIfOrphaned(c.paths, r, undefined, c.k);
  return { r, o: observe(c.paths, r) };
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const start = readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[21];
  const until = Date.now() + timeoutMs;
  for (;;) {
    let now: string | undefined;
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      now = st[st.lastIndexOf(')') + 2] === 'Z' ? undefined : st.split(' ')[21];
    } catch {
      now = undefined;
    }
    if (now !== start) return true;
    if (Date.now() > until) return false;
    await sleep(10);
  }
}

/** stop or kill of a container in a foreground tsrun: signal it directly; its tsrun records the exit. */
async function stopForeground(c: Ctx, r: Record, o: Observed, sig: number, timeoutS: number): Promise<void> {
  try {
    c.k.kill(o.pid, sig, `stop: ${sig}`);
  } catch {
    return;
  }
  if (!(await waitGone(o.pid, timeoutS * 1000))) {
    try {
      c.k.kill(o.pid, 9, 'stop: the timeout passed, SIGKILL');
    } catch {
      /* gone */
    }
    await waitGone(o.pid, 10_000);
  }
  // Give the foreground tsrun a moment to write the exit code.
  for (let i = 0; i < 100 && !readRecord(c.paths, r.id).state.finishedAt; i++) await sleep(10);
}

async function stopOne(c: Ctx, ref: string, timeout: number | undefined, signal: string | undefined): Promise<void> {
  const { r, o } = stateOf(c, ref);
  const sig = parseSignal(signal ?? r.stopSignal);
  const t = timeout ?? r.stopTimeout;
  if (!r.foreground && o.watcherAlive) {
    // Only the monitor knows whether a restart is pending (the process may have just
    // exited, with its restart not yet recorded): it cancels that, settles a start in
    // flight, then stops what runs. Judging by the observed status here raced with it.
    await callMonitor(c.paths, { op: 'stop', id: r.id, timeout: t, signal: sig }, { start: true, rootFlag: c.rootFlag });
    return;
  }
  if (o.status !== 'running' && o.status !== 'paused') return;
  if (r.foreground) await stopForeground(c, r, o, sig, t);
  else await callMonitor(c.paths, { op: 'stop', id: r.id, timeout: t, signal: sig }, { start: true, rootFlag: c.rootFlag });
}

async function startOne(c: Ctx, ref: string): Promise<string> {
  const { r, o } = stateOf(c, ref);
  if (o.status === 'running' || o.status === 'paused') return r.id;
  if (r.foreground) {
    // A container first run in the foreground is started again under the monitor.
    updateState(c.paths, r.id, (_s, rec) => {
      rec.foreground = false;
    });
  }
  await callMonitor(c.paths, { op: 'start', id: r.id }, { start: true, rootFlag: c.rootFlag });
  return r.id;
}

/** Streams the container's output (from the log) until it exits; returns its exit code. */
async function attachOutput(c: Ctx, id: string, follower: LogFollower, startup?: Promise<unknown>): Promise<number> {
  await startup;
  const out = (e: { stream: string; log: string }): boolean => (e.stream === 'stdout' ? process.stdout : process.stderr).write(e.log);
  // The monitor answers `wait` once the exit is recorded, logs drained included.
  let code: number | null = null;
  const waited = callMonitor(c.paths, { op: 'wait', id }, { start: true, rootFlag: c.rootFlag }).then((r) => {
    code = r.exitCode ?? 0;
  });
  waited.catch(() => {});
  while (code === null) {
    follower.poll(out);
    await Promise.race([waited, sleep(50)]);
  }
  follower.poll(out);
  return code;
}

interface AttachFlags {
  stdin: boolean;
  sigProxy: string | boolean;
  detachKeys: string;
}

/** docker's sig-proxy set: every catchable signal but the ones about tsrun's own terminal and children. */
const PROXIED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGCONT', 'SIGTSTP'] as const;

/**
 * `attach` and `start -a`: a -t container's terminal through the monitor (a byte
 * stream both ways); otherwise its output from the log, and stdin written straight into
 * its stdin FIFO. `startup` starts it once the output is being watched, so nothing of
 * its first output is missed. Returns the exit status to leave with.
 */
async function attachContainer(c: Ctx, id: string, f: AttachFlags, startup?: () => Promise<unknown>): Promise<number> {
  const r = readRecord(c.paths, id);
  const keys = parseDetachKeys(f.detachKeys);
  const withStdin = f.stdin && r.openStdin === true;
  if (f.stdin && !r.openStdin && startup) throw new TsrunError('USAGE', `container ${r.name} was not created with -i: it has no stdin to attach`);
  if (r.spec.process?.terminal === true) return attachTerminalOf(c, id, withStdin, keys, startup);
  const follower = new LogFollower(logPath(recordDir(c.paths, id), id));
  await startup?.();
  let input: net.Socket | undefined;
  if (withStdin) {
    let fd: number;
    try {
      // Non-blocking open: the container holds the reading end, so this succeeds at
      // once; if it is gone, ENXIO says so instead of a hang.
      fd = openSync(join(stateDir(c.paths, id), 'stdin.fifo'), FS.O_WRONLY | FS.O_NONBLOCK);
    } catch (e) {
      throw new TsrunError('STATE', `container ${r.name} has no open stdin: ${(e as Error).message}`, { hint: 'it may have exited' });
    }
    input = new net.Socket({ fd, readable: false, writable: true });
    input.on('error', () => {}); // EPIPE once the container is gone
    const sock = input;
    // Our end closes at EOF; the container keeps its own, so it never reads EOF (docker's -i).
    process.stdin.on('end', () => sock.end());
    process.stdin.pipe(sock, { end: false });
  }
  const proxy = f.sigProxy !== false && f.sigProxy !== 'false';
  const handlers: Array<[string, () => void]> = [];
  if (proxy) {
    for (const s of PROXIED) {
      const h = (): void => {
        void callMonitor(c.paths, { op: 'kill', id, signal: parseSignal(s) }, { start: true, rootFlag: c.rootFlag }).catch(() => {});
      };
      process.on(s, h);
      handlers.push([s, h]);
    }
  }
  try {
    return await attachOutput(c, id, follower);
  } finally {
    for (const [s, h] of handlers) process.removeListener(s, h);
    input?.destroy();
  }
}

async function attachTerminalOf(c: Ctx, id: string, withStdin: boolean, keys: Buffer, startup?: () => Promise<unknown>): Promise<number> {
  // Before the start: the monitor attaches us to the pty before the container's gate opens.
  const sock = await attachTerminal(c.paths, id, c.rootFlag);
  const resize = (): void => {
    if (!process.stdout.isTTY) return;
    void callMonitor(c.paths, { op: 'resize', id, rows: process.stdout.rows, cols: process.stdout.columns }, { start: false }).catch(() => {});
  };
  let detached = false;
  const closed = new Promise<void>((res) => sock.on('close', () => res()));
  sock.on('error', () => {});
  sock.pipe(process.stdout, { end: false });
  sock.resume();
  try {
    await startup?.();
  } catch (e) {
    sock.destroy();
    throw e;
  }
  resize();
  process.on('SIGWINCH', resize);
  const stdin = process.stdin;
  const raw = withStdin && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  const scanner = new DetachScanner(keys);
  const onData = (chunk: Buffer): void => {
    const { out, detached: d } = scanner.feed(chunk);
    if (out.length) sock.write(out);
    if (d) {
      detached = true;
      sock.destroy();
    }
  };
  if (withStdin) {
    stdin.on('data', onData);
    stdin.resume();
  }
  try {
    await closed;
  } finally {
    process.removeListener('SIGWINCH', resize);
    if (raw) stdin.setRawMode(false);
    stdin.removeListener('data', onData);
    stdin.pause();
  }
  if (detached) {
    // docker's words and status for a detach
    process.stderr.write('read escape sequence\n');
    return 1;
  }
  // The terminal closed: the monitor recorded the exit first, then closed it. If it
  // did not (it died), a new monitor adopts the container and answers.
  try {
    const rec = readRecord(c.paths, id);
    if (observe(c.paths, rec).status === 'exited' && rec.state.finishedAt) return rec.state.exitCode ?? 0;
  } catch {
    /* removed (--rm): ask the monitor */
  }
  return (await callMonitor(c.paths, { op: 'wait', id }, { start: true, rootFlag: c.rootFlag })).exitCode ?? 0;
}

async function removeOne(c: Ctx, ref: string, force: boolean): Promise<void> {
  let id: string;
  try {
    id = resolveContainer(c.paths, ref);
  } catch (e) {
    throw e;
  }
  let r: Record;
  try {
    r = readRecord(c.paths, id);
  } catch (e) {
    if (force && e instanceof TsrunError && e.code === 'STATE') {
      removeRecord(c.paths, id);
      return;
    }
    throw e;
  }
  const o = observe(c.paths, r);
  const starting = !r.foreground && o.watcherAlive && o.status === 'created';
  if (o.status === 'running' || o.status === 'paused' || o.status === 'restarting' || starting) {
    if (!force) throw new TsrunError('STATE', `cannot remove container "${r.name}": container is ${o.status}`, { hint: `stop the container before removing, or force remove: tsrun rm -f ${r.name}` });
    if (r.foreground) await stopForeground(c, r, o, 9, 0);
    else await callMonitor(c.paths, { op: 'forget', id }, { start: true, rootFlag: c.rootFlag });
  }
  const rt = observe(c.paths, readRecord(c.paths, id)).rt;
  if (rt?.cgroupsPath && !rt.owner) {
    try {
      removeStaleCgroup(c.k, rt.cgroupsPath);
    } catch {
      /* swept later */
    }
  }
  removeRecord(c.paths, id);
}

export function registerLifecycle(program: Command): void {
  program.command('__monitor', { hidden: true }).action(async (_o: unknown, cmd: Command) => {
    const c = ctxOf(cmd);
    requireRoot();
    const { runMonitor } = await import('../engine/monitor/server.js');
    await runMonitor(c.k, c.paths);
  });

  program
    .command('start')
    .description('start one or more created or stopped containers')
    .option('-a, --attach', 'attach stdout/stderr and exit with the container\'s status', false)
    .option('-i, --interactive', 'attach stdin too (the container must have been created with -i)', false)
    .option('--detach-keys <keys>', 'the key sequence that detaches from a terminal', DEFAULT_DETACH_KEYS)
    .argument('<container...>')
    .action(async (refs: string[], opts: { attach: boolean; interactive: boolean; detachKeys: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      if (opts.attach || opts.interactive) {
        if (refs.length > 1) throw new TsrunError('USAGE', 'you cannot start and attach multiple containers at once');
        const id = resolveContainer(c.paths, refs[0]!);
        process.exitCode = await attachContainer(c, id, { stdin: opts.interactive, sigProxy: 'true', detachKeys: opts.detachKeys }, () => startOne(c, id));
        process.exit(process.exitCode);
      }
      await forEach(refs, async (ref) => {
        await startOne(c, ref);
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('ps')
    .description('list containers')
    .option('-a, --all', 'show all containers (default: running ones)', false)
    .option('-q, --quiet', 'only IDs', false)
    .option('--no-trunc', 'do not truncate')
    .option('-f, --filter <key=value>', 'status=, name=, id=, exited=, health=', collect, [])
    .option('--format <fmt>', 'json, or a Go-style template like {{.ID}} {{.Names}}')
    .action((opts: { all: boolean; quiet: boolean; trunc: boolean; filter: string[]; format?: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      try {
        collectGarbage(c.k, c.paths);
      } catch {
        /* ps still lists what it can */
      }
      const rows: Array<{ [k: string]: string }> = [];
      const filters = opts.filter.map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] as const);
      for (const { id, record, error } of listRecords(c.paths).sort((a, b) => (b.record?.created ?? '').localeCompare(a.record?.created ?? ''))) {
        if (!record) {
          process.stderr.write(`tsrun: skipping container ${id.slice(0, 12)}: ${error}\n`);
          continue;
        }
        const r = repairIfOrphaned(c.paths, record, undefined, c.k);
        const o = observe(c.paths, r);
        const ok = filters.every(([k, v]) => {
          if (k === 'status') return o.status === v;
          if (k === 'name') return r.name.includes(v);
          if (k === 'id') return r.id.startsWith(v);
          if (k === 'exited') return o.status === 'exited' && String(r.state.exitCode) === v;
          if (k === 'health') return (r.state.health?.status ?? 'none') === v;
          throw new TsrunError('USAGE', `invalid filter "${k}"`, { hint: 'status, name, id, exited, health' });
        });
        if (!ok) continue;
        if (!opts.all && o.status !== 'running' && o.status !== 'paused' && o.status !== 'restarting' && !filters.some(([k]) => k === 'status' || k === 'exited')) continue;
        rows.push({
          ID: opts.trunc ? r.id.slice(0, 12) : r.id, Image: r.image, Command: commandText(r, opts.trunc), CreatedAt: r.created,
          RunningFor: `${ago(r.created)} ago`, Status: statusText(r, o), State: o.status, Ports: '', Names: r.name,
        });
      }
      if (opts.quiet) {
        for (const row of rows) process.stdout.write(`${row.ID}\n`);
      } else if (opts.format === 'json' || opts.format === '{{json .}}') {
        for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
      } else if (opts.format) {
        for (const row of rows) process.stdout.write(`${renderTemplate(opts.format, row)}\n`);
      } else {
        const cols = ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'];
        const keys = ['ID', 'Image', 'Command', 'RunningFor', 'Status', 'Ports', 'Names'];
        const table = [cols, ...rows.map((row) => keys.map((k) => row[k]!))];
        const widths = cols.map((_, i) => Math.max(...table.map((t) => t[i]!.length)));
        for (const t of table) process.stdout.write(t.map((v, i) => (i === t.length - 1 ? v : v.padEnd(widths[i]! + 3))).join('').trimEnd() + '\n');
      }
    });

  program
    .command('inspect')
    .description('low-level information on containers, as JSON')
    .option('-f, --format <tpl>', 'a Go-style template, e.g. {{.State.Status}}')
    .argument('<container...>')
    .action((refs: string[], opts: { format?: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      const out: object[] = [];
      let missing: TsrunError | null = null;
      for (const ref of refs) {
        try {
          const { r } = stateOf(c, ref);
          out.push(inspectObject(c.paths, r));
        } catch (e) {
          if (!(e instanceof TsrunError)) throw e;
          process.stderr.write(`tsrun: ${e.message}\n`);
          missing = e;
        }
      }
      if (opts.format) for (const o of out) process.stdout.write(`${renderTemplate(opts.format, o)}\n`);
      else process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
      if (missing) process.exitCode = 1;
    });

  program
    .command('logs')
    .description('fetch a container\'s logs (stdout to stdout, stderr to stderr)')
    .option('-f, --follow', 'follow the output', false)
    .option('-n, --tail <n>', 'lines from the end ("all" for every line)', 'all')
    .option('--since <time>', 'since a time (RFC 3339, Unix time, or a duration like 10m)')
    .option('-t, --timestamps', 'show timestamps', false)
    .argument('<container>')
    .action(async (ref: string, opts: { follow: boolean; tail: string; since?: string; timestamps: boolean }, cmd: Command) => {
      const c = ctxOf(cmd);
      const r = loadContainer(c.paths, ref);
      const tail = opts.tail === 'all' ? undefined : Number(opts.tail);
      if (tail !== undefined && !Number.isInteger(tail)) throw new TsrunError('USAGE', `--tail ${opts.tail}: use a number or "all"`);
      const sel = { tail, sinceMs: opts.since ? parseSince(opts.since) : undefined, timestamps: opts.timestamps };
      const path = logPath(recordDir(c.paths, r.id), r.id);
      const follower = new LogFollower(path); // before reading, so no line falls between
      const out = (e: { stream: string; log: string; time: string }): void => {
        (e.stream === 'stderr' ? process.stderr : process.stdout).write(format(e as never, opts.timestamps));
      };
      for (const e of select(readAll(path), sel)) out(e);
      if (!opts.follow) return;
      for (;;) {
        follower.poll(out);
        let rec: Record;
        try {
          rec = readRecord(c.paths, r.id);
        } catch {
          return; // removed
        }
        const o = observe(c.paths, rec);
        if (o.status === 'exited' || o.status === 'created') {
          await sleep(30);
          follower.poll(out);
          return;
        }
        await sleep(100);
      }
    });

  program
    .command('exec')
    .description('run a command in a running container')
    .passThroughOptions()
    .option('-i, --interactive', 'keep stdin open', false)
    .option('-t, --tty', 'allocate a pseudo-terminal', false)
    .option('-d, --detach', 'run in the background', false)
    .option('-e, --env <KEY=VALUE>', 'set an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user (name or uid) to run as')
    .argument('<container>')
    .argument('<command...>')
    .action(async (ref: string, command: string[], opts: { interactive: boolean; tty: boolean; detach: boolean; env: string[]; workdir?: string; user?: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      const { r } = stateOf(c, ref);
      const env = opts.env.map((e) => (e.includes('=') ? e : `${e}=${process.env[e] ?? ''}`));
      const stdin = opts.interactive && !opts.detach ? { fd: 0, from: { parentFd: 0 } } : { fd: 0, from: { path: '/dev/null', flags: 0 } };
      const h = await startExec(c.k, c.paths, r, {
        args: command, env, workdir: opts.workdir, user: opts.user,
        tty: opts.tty ? { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 } : null,
        detach: opts.detach,
        stdio: opts.detach ? [stdin, { fd: 1, from: { path: '/dev/null', flags: 1 } }, { fd: 2, from: { path: '/dev/null', flags: 1 } }] : [stdin, { fd: 1, from: { parentFd: 1 } }, { fd: 2, from: { parentFd: 2 } }],
      });
      let restore: (() => void) | undefined;
      try {
        if (h.launched.ptyMaster !== null) restore = attachTty(c.k, h.launched.ptyMaster, opts.interactive);
        try {
          await h.launched.started;
        } catch (e) {
          await h.exit;
          throw e;
        }
        h.cleanup();
        if (opts.detach || !h.exit) return;
        const code = await h.exit;
        if (restore) await drainTty();
        process.exitCode = code;
      } finally {
        h.cleanup();
        restore?.();
      }
      // Node may linger on stdin (-i): the process is done once the command is.
      if (opts.interactive) process.exit(process.exitCode ?? 0);
    });

  program
    .command('stop')
    .description('stop containers: the stop signal, then SIGKILL after the timeout')
    .option('-t, --time <seconds>', 'seconds to wait before killing')
    .option('-s, --signal <sig>', 'signal to send (default: the container\'s stop signal)')
    .argument('<container...>')
    .action(async (refs: string[], opts: { time?: string; signal?: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      await forEach(refs, async (ref) => {
        await stopOne(c, ref, opts.time !== undefined ? Number(opts.time) : undefined, opts.signal);
        process.stdout.write(`${ref}\n`);
      }, true);
    });

  program
    .command('kill')
    .description('send a signal (default SIGKILL) to containers')
    .option('-s, --signal <sig>', 'signal to send', 'KILL')
    .argument('<container...>')
    .action(async (refs: string[], opts: { signal: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      const sig = parseSignal(opts.signal);
      await forEach(refs, async (ref) => {
        const { r, o } = stateOf(c, ref);
        if (o.status !== 'running' && o.status !== 'paused') throw new TsrunError('STATE', `cannot kill container: ${ref}: container ${r.id.slice(0, 12)} is not running`);
        if (r.foreground) c.k.kill(o.pid, sig, `kill -s ${opts.signal}`);
        else await callMonitor(c.paths, { op: 'kill', id: r.id, signal: sig }, { start: true, rootFlag: c.rootFlag });
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('rm')
    .description('remove containers')
    .option('-f, --force', 'kill a running container first', false)
    .option('-v, --volumes', 'remove anonymous volumes (tsrun makes none: accepted for docker compatibility)', false)
    .argument('<container...>')
    .action(async (refs: string[], opts: { force: boolean }, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      await forEach(refs, async (ref) => {
        await removeOne(c, ref, opts.force);
        process.stdout.write(`${ref}\n`);
      }, true);
    });

  program
    .command('wait')
    .description('wait for containers to stop, then print their exit codes')
    .argument('<container...>')
    .action(async (refs: string[], _o: unknown, cmd: Command) => {
      const c = ctxOf(cmd);
      await forEach(refs, async (ref) => {
        const { r, o } = stateOf(c, ref);
        let code = r.state.exitCode ?? 0;
        const live = o.status === 'running' || o.status === 'paused' || o.status === 'restarting' || (o.status === 'created' && o.watcherAlive);
        if (!r.foreground && !live) {
          // Just exited: the monitor may still be writing the exit code; it answers once it is written.
          try {
            code = (await callMonitor(c.paths, { op: 'wait', id: r.id }, { start: false })).exitCode ?? code;
          } catch {
            code = readRecord(c.paths, r.id).state.exitCode ?? code;
          }
        } else if (live) {
          if (r.foreground) {
            await waitGone(o.pid, 1e12);
            for (let i = 0; i < 200 && !readRecord(c.paths, r.id).state.finishedAt; i++) await sleep(10);
            code = readRecord(c.paths, r.id).state.exitCode ?? 255;
          } else {
            code = (await callMonitor(c.paths, { op: 'wait', id: r.id }, { start: true, rootFlag: c.rootFlag })).exitCode ?? 0;
          }
        }
        process.stdout.write(`${code}\n`);
      });
    });

  program
    .command('restart')
    .description('stop, then start containers')
    .option('-t, --time <seconds>', 'seconds to wait before killing')
    .argument('<container...>')
    .action(async (refs: string[], opts: { time?: string }, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      await forEach(refs, async (ref) => {
        await stopOne(c, ref, opts.time !== undefined ? Number(opts.time) : undefined, undefined);
        await startOne(c, ref);
        process.stdout.write(`${ref}\n`);
      });
    });

  for (const verb of ['pause', 'unpause'] as const) {
    program
      .command(verb)
      .description(verb === 'pause' ? 'freeze every process of containers (cgroup freezer)' : 'thaw paused containers')
      .argument('<container...>')
      .action(async (refs: string[], _o: unknown, cmd: Command) => {
        const c = ctxOf(cmd);
        requireRoot();
        await forEach(refs, async (ref) => {
          const { r, o } = stateOf(c, ref);
          if (verb === 'pause' && o.status !== 'running') throw new TsrunError('STATE', `container ${r.id.slice(0, 12)} is ${o.status === 'paused' ? 'already paused' : 'not running'}`);
          if (verb === 'unpause' && o.status !== 'paused') throw new TsrunError('STATE', `container ${r.id.slice(0, 12)} is not paused`);
          if (r.foreground) throw new TsrunError('USAGE', `${verb} works on detached containers (run -d)`);
          await callMonitor(c.paths, { op: verb, id: r.id }, { start: true, rootFlag: c.rootFlag });
          process.stdout.write(`${ref}\n`);
        });
      });
  }

  program
    .command('top')
    .description('the processes of a container (ps on the host, limited to its PID namespace)')
    .allowExcessArguments()
    .argument('<container>')
    .argument('[ps-options...]')
    .action((ref: string, psOpts: string[], _o: unknown, cmd: Command) => {
      const c = ctxOf(cmd);
      const { r, o } = stateOf(c, ref);
      if (o.status !== 'running' && o.status !== 'paused') throw new TsrunError('STATE', `container ${r.id.slice(0, 12)} is not running`);
      const found = processesInPidns(o.pid);
      const pids = found.length ? found : [o.pid];
      process.stdout.write(execFileSync('ps', [...(psOpts.length ? psOpts : ['-f']), '-p', pids.join(',')], { encoding: 'utf8' }));
    });

  program
    .command('attach')
    .description('attach to a running container: its output until it exits, and your input if it was run with -i')
    .option('--no-stdin', 'do not attach stdin')
    .option('--sig-proxy [bool]', 'proxy the signals tsrun receives to the container (not for -t, where ctrl-c is a keystroke)', 'true')
    .option('--detach-keys <keys>', 'the key sequence that detaches from a terminal', DEFAULT_DETACH_KEYS)
    .argument('<container>')
    .action(async (ref: string, opts: AttachFlags, cmd: Command) => {
      const c = ctxOf(cmd);
      const { r, o } = stateOf(c, ref);
      if (o.status !== 'running' && o.status !== 'paused') throw new TsrunError('STATE', 'you cannot attach to a stopped container, start it first');
      if (r.foreground) throw new TsrunError('USAGE', 'attach works on detached containers (run -d)');
      process.exitCode = await attachContainer(c, r.id, opts);
      // Node may linger on stdin: the attach is over.
      process.exit(process.exitCode);
    });

  program
    .command('cp')
    .description('copy files between a container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST')
    .argument('<src>')
    .argument('<dest>')
    .action((src: string, dest: string, _o: unknown, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      const split = (s: string): { ref: string; path: string } | null => {
        const m = /^([^/:][^:]*):(.*)$/.exec(s);
        return m ? { ref: m[1]!, path: m[2] || '/' } : null;
      };
      const from = split(src);
      const to = split(dest);
      if (!!from === !!to) throw new TsrunError('USAGE', 'copying between containers or between host paths is not supported', { hint: 'one of SRC and DEST must be CONTAINER:PATH' });
      const side = (from ?? to)!;
      const { r, o } = stateOf(c, side.ref);
      let root: string;
      if (o.status === 'running' || o.status === 'paused') root = `/proc/${o.pid}/root`; // its mount namespace's view: volumes and overlay included
      else if (!r.overlay) root = r.rootfs;
      else throw new TsrunError('STATE', `container ${r.name} is not running, and its image root is only mounted while it runs`, { hint: 'start it, then copy' });
      copyPaths(c.k, root, from ? { inside: from.path, host: dest, direction: 'out' } : { inside: to!.path, host: src, direction: 'in' });
    });

  program
    .command('rename')
    .description('rename a container')
    .argument('<container>')
    .argument('<new-name>')
    .action((ref: string, name: string, _o: unknown, cmd: Command) => {
      const c = ctxOf(cmd);
      renameRecord(c.paths, ref, name);
    });

  const container = program.command('container').description('manage containers');
  container
    .command('prune')
    .description('remove all stopped containers')
    .option('-f, --force', 'do not prompt (tsrun never prompts)', false)
    .action((_o: unknown, cmd: Command) => {
      const c = ctxOf(cmd);
      requireRoot();
      process.stdout.write('Deleted Containers:\n');
      for (const { record } of listRecords(c.paths)) {
        if (!record) continue;
        const r = repairIfOrphaned(c.paths, record, undefined, c.k);
        const o = observe(c.paths, r);
        if (o.status !== 'exited' && o.status !== 'created') continue;
        if (o.status === 'created' && o.watcherAlive) continue;
        removeRecord(c.paths, r.id);
        process.stdout.write(`${r.id}\n`);
      }
    });
}


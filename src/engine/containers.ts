// Container records: what the engine remembers about a container between commands.
//
//   <root>/containers/<id>/config.json   the persistent record (this file's Record)
//   <root>/containers/<id>/<id>-json.log  its logs (engine/logs.ts)
//   <runRoot>/containers/<id>/state.json  runtime data (pid + start time, who watches it)
//
// The record says what was asked and what was observed; it never decides whether a
// container runs. Status always comes from the kernel: the pid in the runtime state,
// checked against its start time (pids are reused). runRoot is a tmpfs on real hosts,
// so after a reboot the runtime state is gone and every container reads as exited.
import { withFileLock } from '../runtime/lock.js';
import { removeStaleCgroup } from '../cgroups/manager.js';
import type { Kernel } from '../linux/kernel.js';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TsrunError } from '../errors.js';
import type { OverlayLayers } from '../overlay/mount.js';
import { isAlive } from '../runtime/proc-scan.js';
import { type Paths, type RuntimeState, readState, stateDir, writeJson } from '../runtime/state.js';
import type { Spec } from '../spec/types.js';

export type RestartName = 'no' | 'on-failure' | 'always' | 'unless-stopped';

export interface HealthConfig {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface HostConfig {
  autoRemove: boolean;
  restartPolicy: { name: RestartName; maximumRetryCount: number };
  logConfig: { type: 'json-file'; maxSize: number; maxFile: number };
  init: boolean;
}

export interface HealthState {
  status: 'starting' | 'healthy' | 'unhealthy';
  failingStreak: number;
  log: Array<{ start: string; end: string; exitCode: number; output: string }>;
}

export interface ObservedState {
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  /** the process ended while nothing that could wait for it was its parent */
  exitUnknown?: boolean;
  oomKilled?: boolean;
  restartCount: number;
  /** stop/kill by a user: `unless-stopped` and `always` do not restart it */
  stoppedByUser?: boolean;
  error?: string;
  health?: HealthState;
}

export interface Record {
  id: string;
  name: string;
  created: string;
  image: string;
  /** the argv the container runs (after --init is added) */
  path: string;
  args: string[];
  spec: Spec;
  rootfs: string;
  bundle: string;
  overlay?: OverlayLayers;
  /** run in a tsrun process's foreground (not watched by the monitor) */
  foreground: boolean;
  /** -i (docker's OpenStdin): a detached container reads stdin.fifo, which `attach` writes */
  openStdin?: boolean;
  stopSignal: string;
  stopTimeout: number;
  healthcheck?: HealthConfig;
  hostConfig: HostConfig;
  state: ObservedState;
}

/** Runtime data of a container that the monitor watches; also a RuntimeState for collectGarbage. */
export interface MonitorState extends RuntimeState {
  monitor?: { pid: number; start: number };
  paused?: boolean;
  restarting?: boolean;
  /**
   * -dt: a host `sleep` that holds a copy of the pty master as its fd 3, so the
   * terminal outlives a killed monitor; the next monitor takes the fd back with
   * pidfd_getfd(2).
   */
  ptyHolder?: { pid: number; start: number };
}

export type Status = 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead';

const ID_RE = /^[0-9a-f]{64}$/;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function recordsDir(p: Paths): string {
  return join(p.root, 'containers');
}

export function recordDir(p: Paths, id: string): string {
  return join(recordsDir(p), id);
}

function recordFile(p: Paths, id: string): string {
  return join(recordDir(p, id), 'config.json');
}

export function checkName(name: string): void {
  if (!NAME_RE.test(name) || name.length > 128) {
    throw new TsrunError('USAGE', `invalid container name "${name}"`, { hint: 'use [a-zA-Z0-9][a-zA-Z0-9_.-]*' });
  }
}

/** Reads a record; a corrupt one is reported with its path, never half-trusted. */
export function readRecord(p: Paths, id: string): Record {
  let text: string;
  try {
    text = readFileSync(recordFile(p, id), 'utf8');
  } catch {
    throw new TsrunError('NO_SUCH_CONTAINER', `no such container: ${id}`);
  }
  let r: Record;
  try {
    r = JSON.parse(text) as Record;
  } catch (e) {
    throw new TsrunError('STATE', `the record of container ${id.slice(0, 12)} is corrupt: ${recordFile(p, id)}: ${(e as Error).message}`, { hint: `remove it with: tsrun rm -f ${id}` });
  }
  if (r.id !== id || typeof r.name !== 'string' || !r.spec || !r.state || !r.hostConfig) {
    throw new TsrunError('STATE', `the record of container ${id.slice(0, 12)} is corrupt: ${recordFile(p, id)}: fields missing or wrong`, { hint: `remove it with: tsrun rm -f ${id}` });
  }
  return r;
}

export function writeRecord(p: Paths, r: Record): void {
  mkdirSync(recordDir(p, r.id), { recursive: true, mode: 0o711 });
  writeJson(recordFile(p, r.id), r);
}

/** Read-modify-write of the observed state under the container's lock. */
export function updateState(p: Paths, id: string, f: (s: ObservedState, r: Record) => void): Record | null {
  return withLock(p, `c-${id}`, () => {
    let r: Record;
    try {
      r = readRecord(p, id);
    } catch {
      return null; // removed meanwhile
    }
    f(r.state, r);
    writeRecord(p, r);
    return r;
  });
}

export interface ListedRecord {
  id: string;
  record: Record | null;
  /** why the record could not be read */
  error?: string;
}

/** Every container dir with a record; corrupt ones are listed with their error. Image-run dirs without a record are skipped. */
export function listRecords(p: Paths): ListedRecord[] {
  let ids: string[];
  try {
    ids = readdirSync(recordsDir(p));
  } catch {
    return [];
  }
  const out: ListedRecord[] = [];
  for (const id of ids) {
    if (!ID_RE.test(id) || !existsSync(recordFile(p, id))) continue;
    try {
      out.push({ id, record: readRecord(p, id) });
    } catch (e) {
      out.push({ id, record: null, error: (e as Error).message });
    }
  }
  return out;
}

/** A full id, a unique id prefix, or a name (docker: an exact name or id wins over a prefix). */
export function resolveContainer(p: Paths, ref: string): string {
  const all = listRecords(p);
  const exact = all.find((c) => c.id === ref || c.record?.name === ref || c.record?.name === ref.replace(/^\//, ''));
  if (exact) return exact.id;
  if (/^[0-9a-f]+$/.test(ref)) {
    const m = all.filter((c) => c.id.startsWith(ref));
    if (m.length === 1) return m[0]!.id;
    if (m.length > 1) throw new TsrunError('USAGE', `container id prefix "${ref}" is ambiguous: it matches ${m.length} containers`, { hint: 'give more characters of the id' });
  }
  throw new TsrunError('NO_SUCH_CONTAINER', `no such container: ${ref}`);
}

export function loadContainer(p: Paths, ref: string): Record {
  return readRecord(p, resolveContainer(p, ref));
}

// ---------------------------------------------------------------------------------
// Locks: an O_EXCL file holding the owner's pid and start time. A lock whose owner is
// gone (kill -9 while holding it) is broken; a live owner is waited for.

function lockPath(p: Paths, name: string): string {
  return join(p.root, 'locks', `${name}.lock`);
}


export function withLock<T>(p: Paths, name: string, f: () => T, timeoutMs = 15_000): T {
  return withFileLock(lockPath(p, name), f, { what: `container ${name === 'names' ? 'names' : 'record ' + name.slice(2, 14)}`, timeoutMs });
}

// ---------------------------------------------------------------------------------
// Names: docker's adjective_surname style, unique under the names lock.

const ADJ = ['admiring', 'brave', 'clever', 'dreamy', 'eager', 'focused', 'gallant', 'happy', 'jolly', 'keen', 'loving', 'modest', 'nifty', 'optimistic', 'pensive', 'quirky', 'relaxed', 'serene', 'tender', 'upbeat', 'vibrant', 'wizardly', 'xenial', 'youthful', 'zealous'];
const NOUN = ['archimedes', 'babbage', 'curie', 'dijkstra', 'euler', 'fermat', 'gauss', 'hopper', 'ishango', 'jennings', 'knuth', 'lovelace', 'mccarthy', 'noether', 'ostrom', 'pascal', 'ritchie', 'shannon', 'thompson', 'turing', 'varahamihira', 'wozniak', 'yonath', 'zuse'];

function generateName(taken: Set<string>): string {
  for (let i = 0; ; i++) {
    const a = ADJ[Math.floor(Math.random() * ADJ.length)]!;
    const n = NOUN[Math.floor(Math.random() * NOUN.length)]!;
    const name = i < 20 ? `${a}_${n}` : `${a}_${n}${i}`;
    if (!taken.has(name)) return name;
  }
}

/** Writes a new record with a unique name; throws when the name is taken (docker's message). */
export function createRecord(p: Paths, r: Omit<Record, 'name'> & { name?: string }): Record {
  if (r.name) checkName(r.name);
  return withLock(p, 'names', () => {
    const taken = new Map(listRecords(p).filter((c) => c.record).map((c) => [c.record!.name, c.id]));
    if (r.name && taken.has(r.name)) {
      throw new TsrunError('STATE', `the container name "/${r.name}" is already in use by container "${taken.get(r.name)}"`, { hint: 'remove or rename that container, or pick another name' });
    }
    const full: Record = { ...r, name: r.name ?? generateName(new Set(taken.keys())) };
    writeRecord(p, full);
    return full;
  });
}

export function renameRecord(p: Paths, ref: string, newName: string): void {
  checkName(newName);
  withLock(p, 'names', () => {
    const id = resolveContainer(p, ref);
    const other = listRecords(p).find((c) => c.record?.name === newName);
    if (other && other.id !== id) throw new TsrunError('STATE', `the container name "/${newName}" is already in use by container "${other.id}"`);
    updateState(p, id, (_s, r) => {
      r.name = newName;
    });
  });
}

/** Removes the record, its logs and (for image runs) the overlay's upper and work dirs. */
export function removeRecord(p: Paths, id: string): void {
  killPtyHolder(runtimeState(p, id)?.ptyHolder);
  rmSync(recordDir(p, id), { recursive: true, force: true });
  rmSync(stateDir(p, id), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------
// Status from the kernel.

export function runtimeState(p: Paths, id: string): MonitorState | null {
  return readState(stateDir(p, id)) as MonitorState | null;
}

export interface Observed {
  status: Status;
  pid: number;
  rt: MonitorState | null;
  /** who watches it (the monitor or a foreground tsrun) is alive */
  watcherAlive: boolean;
}

export function observe(p: Paths, r: Record): Observed {
  const rt = runtimeState(p, r.id);
  const watcher = rt?.owner ?? rt?.monitor;
  // A zombie watcher (killed, its reaper not there yet) records nothing any more.
  const watcherAlive = !!watcher && isAlive(watcher.pid, watcher.start);
  if (rt?.pid && rt.pidStart && isAlive(rt.pid, rt.pidStart)) {
    return { status: rt.paused ? 'paused' : 'running', pid: rt.pid, rt, watcherAlive };
  }
  if (rt?.restarting && watcherAlive) return { status: 'restarting', pid: 0, rt, watcherAlive };
  if (rt && watcherAlive && rt.status === 'creating') return { status: 'created', pid: 0, rt, watcherAlive };
  if (!r.state.startedAt) return { status: 'created', pid: 0, rt, watcherAlive };
  return { status: 'exited', pid: 0, rt, watcherAlive };
}

/**
 * A container whose process is gone but whose record never got an exit (its watcher was
 * killed, or the host rebooted): record it as exited with an unknown code (255, docker's
 * "unknown" status too), and drop the runtime state. Only when no live watcher could
 * still record the real code.
 */
export function repairIfOrphaned(p: Paths, r: Record, o: Observed = observe(p, r), k?: Kernel): Record {
  if (o.status !== 'exited' || o.watcherAlive) return r;
  if (o.rt) {
    // The runtime state of a dead container: nothing will clean it up but us. Its pty
    // holder (-dt) and its cgroup are only found through that state, so they go first
    // (a cgroup that will not go keeps the state, for a later retry).
    killPtyHolder(o.rt.ptyHolder);
    let keep = false;
    if (k && o.rt.cgroupsPath && !o.rt.owner) {
      try {
        removeStaleCgroup(k, o.rt.cgroupsPath);
      } catch {
        keep = true;
      }
    }
    if (!keep) rmSync(stateDir(p, r.id), { recursive: true, force: true });
  }
  if (r.state.finishedAt || !r.state.startedAt) return r;
  return updateState(p, r.id, (s) => {
    if (s.finishedAt) return;
    s.finishedAt = new Date().toISOString();
    s.exitCode = 255;
    s.exitUnknown = true;
    s.error = 'the container exited while no tsrun process was watching it: its exit status is unknown';
  }) ?? r;
}

/** Ends a -dt container's pty holder, checked by pid + start time (pids are reused). */
export function killPtyHolder(h: { pid: number; start: number } | undefined): void {
  if (!h || !isAlive(h.pid, h.start)) return;
  try {
    process.kill(h.pid, 'SIGKILL');
  } catch {
    /* gone meanwhile */
  }
}

export function writeRuntimeState(p: Paths, s: MonitorState): void {
  mkdirSync(stateDir(p, s.id), { recursive: true, mode: 0o711 });
  writeJson(join(stateDir(p, s.id), 'state.json'), s);
}

export function parseRestart(text: string | undefined): HostConfig['restartPolicy'] {
  const t = text ?? 'no';
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(t);
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure')) {
    throw new TsrunError('USAGE', `invalid restart policy "${t}"`, { hint: 'use no, always, unless-stopped or on-failure[:max-retries]' });
  }
  return { name: m[1] as RestartName, maximumRetryCount: m[2] ? Number(m[2]) : 0 };
}

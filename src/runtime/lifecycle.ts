// The container lifecycle of the OCI runtime spec (runtime.md): create, start, state,
// kill, delete. `create` leaves the container process blocked at its start gate, just
// before execve, and returns; `start`, from another process, opens the gate. Status is
// derived from the kernel each time it is asked, never trusted from a file alone:
//   created  = the process is alive and the gate (exec.fifo) is still there
//   running  = the process is alive and the gate is gone
//   stopped  = the process is gone (or a zombie)
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kernel, SpawnStdio } from '../linux/kernel.js';
import { TsrunError, wrap } from '../errors.js';
import { lastCap } from '../security/capabilities.js';
import type { Spec } from '../spec/types.js';
import { tracer } from '../trace/tracer.js';
import { runHooks } from './hooks.js';
import { ContainerCgroup } from '../cgroups/container.js';
import { isFrozen, setFrozen } from '../cgroups/freeze.js';
import { cgroupManager, removeStaleCgroup } from '../cgroups/manager.js';
import type { CgroupManager } from '../cgroups/types.js';
import { earlyFailure, killQuietly, launch, openGate, untilAtGate } from './launcher.js';
import { GATE_NAME } from './protocol.js';
import { isAlive, processesInPidns, procStartTime } from './proc-scan.js';
import { attachTty, drainTty, requireRoot, waitExit } from './run.js';
import { type OciState, type OciStatus, type Paths, containersDir, createStateDir, ociStateOf, stateDir, writeJson } from './state.js';


export interface ContainerRecord {
  ociVersion: string;
  id: string;
  pid: number;
  pidStart: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations: Record<string, string>;
  spec: Spec;
  /** the container's cgroup (absolute or relative cgroupsPath), for delete, exec and update */
  cgroupsPath?: string;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_+.-]*$/;

export function checkId(id: string): void {
  if (!ID_RE.test(id) || id.length > 1024) {
    throw new TsrunError('USAGE', `invalid container id "${id}"`, { hint: 'use letters, digits and _ + - . (not starting with a symbol)' });
  }
}

function recordPath(p: Paths, id: string): string {
  return join(stateDir(p, id), 'state.json');
}

export function loadRecord(p: Paths, id: string): ContainerRecord {
  checkId(id);
  let text: string;
  try {
    text = readFileSync(recordPath(p, id), 'utf8');
  } catch {
    throw new TsrunError('NO_SUCH_CONTAINER', `container "${id}" does not exist`);
  }
  try {
    const r = JSON.parse(text) as ContainerRecord;
    if (r.id !== id || typeof r.pid !== 'number') throw new Error('fields missing');
    return r;
  } catch (e) {
    throw new TsrunError('STATE', `the state of container "${id}" is corrupt (${(e as Error).message})`, { hint: `remove it with: delete --force ${id}` });
  }
}

export function statusOf(p: Paths, r: ContainerRecord): OciStatus {
  if (!isAlive(r.pid, r.pidStart)) return 'stopped';
  if (existsSync(join(stateDir(p, r.id), GATE_NAME))) return 'created';
  return r.cgroupsPath && isFrozen(r.cgroupsPath) ? 'paused' : 'running';
}

export function ociState(p: Paths, r: ContainerRecord, status = statusOf(p, r)): OciState {
  return ociStateOf(r, status);
}

export interface CreateRequest {
  id: string;
  spec: Spec;
  bundle: string;
  rootfs: string;
  paths: Paths;
  consoleSocket?: string;
  pidFile?: string;
  preserveFds?: number;
}

/** Sets the container up and leaves its process at the gate. Returns its pid. */
export async function createContainer(k: Kernel, req: CreateRequest): Promise<number> {
  requireRoot();
  checkId(req.id);
  const spec = req.spec;
  if (existsSync(stateDir(req.paths, req.id))) throw new TsrunError('STATE', `container "${req.id}" already exists`);
  const terminal = spec.process?.terminal === true;
  if (terminal && !req.consoleSocket) {
    throw new TsrunError('USAGE', 'process.terminal is true but no --console-socket was given', { hint: 'a detached container with a terminal needs a console socket to hand the pty master to' });
  }
  const dir = createStateDir(req.paths, req.id);
  const cgroup = new ContainerCgroup(k, req.id, spec);
  let pid: number | undefined;
  try {
    // The cgroup's path goes into the record first, so a create killed half-way can
    // still be cleaned up by delete --force.
    writeJson(recordPath(req.paths, req.id), { ociVersion: spec.ociVersion, id: req.id, pid: 0, pidStart: 0, bundle: req.bundle, rootfs: req.rootfs, created: new Date().toISOString(), annotations: spec.annotations ?? {}, spec, cgroupsPath: cgroup.path });
    k.mkfifo(join(dir, GATE_NAME), 0o644);
    cgroup.create();
    const setupSpec = await cgroup.setupSpec();
    const stdio: SpawnStdio[] = [0, 1, 2].map((fd) => ({ fd, from: { parentFd: fd } }));
    const launched = await launch(
      k,
      {
        mode: 'create', spec: setupSpec, rootfs: req.rootfs, bundle: req.bundle, stateDir: dir, cgroupThreadFiles: cgroup.threadFiles(),
        tty: terminal ? { rows: spec.process?.consoleSize?.height ?? 24, cols: spec.process?.consoleSize?.width ?? 80 } : null,
        stdio, preserveFds: req.preserveFds ?? 0, trace: tracer.mode, color: false,
        lastCap: lastCap(() => readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')),
      },
      new Set(),
    );
    pid = launched.pid;
    try {
      cgroup.attach(pid, launched.setupTid);
    } catch (e) {
      throw (await earlyFailure(launched)) ?? e;
    }
    await untilAtGate(launched);
    if (launched.ptyMaster !== null) {
      k.sendFd(req.consoleSocket!, launched.ptyMaster);
      k.close(launched.ptyMaster);
    }
    const record: ContainerRecord = {
      ociVersion: spec.ociVersion, id: req.id, pid, pidStart: procStartTime(pid) ?? 0, bundle: req.bundle, rootfs: req.rootfs,
      created: new Date().toISOString(), annotations: spec.annotations ?? {}, spec, cgroupsPath: cgroup.path,
    };
    writeJson(recordPath(req.paths, req.id), record);
    // runtime.md: "created" once the environment exists (lifecycle step 2); these hooks come after it
    const state = { ...ociState(req.paths, record, 'created') };
    runHooks(spec, 'prestart', state);
    runHooks(spec, 'createRuntime', state);
    runHooks(spec, 'createContainer', state, { k, pid });
    if (req.pidFile) {
      const tmp = `${req.pidFile}.tmp-${process.pid}`;
      writeFileSync(tmp, String(pid));
      renameSync(tmp, req.pidFile);
    }
    return pid;
  } catch (e) {
    if (pid !== undefined) killQuietly(k, pid);
    try {
      cgroup.remove();
    } catch {
      /* delete --force and the cgroup sweep retry */
    }
    rmSync(dir, { recursive: true, force: true });
    throw wrap('creating container', e);
  }
}

/** The cgroup of a created container, or null when it has none (no cgroup fs). */
export function containerCgroup(k: Kernel, r: ContainerRecord): CgroupManager | null {
  if (!r.cgroupsPath) return null;
  const m = cgroupManager(k, r.cgroupsPath);
  return m.exists() ? m : null;
}

export function startContainer(k: Kernel, p: Paths, id: string): void {
  const r = loadRecord(p, id);
  const status = statusOf(p, r);
  if (status !== 'created') throw new TsrunError('STATE', `cannot start a container that is ${status}`);
  runHooks(r.spec, 'startContainer', ociState(p, r), { k, pid: r.pid });
  openGate(k, stateDir(p, id), r.pid);
  // The gate's absence is what marks the container as started.
  unlinkSync(join(stateDir(p, id), GATE_NAME));
  runHooks(r.spec, 'poststart', ociState(p, r, 'running'));
}


export function pauseContainer(k: Kernel, p: Paths, id: string, pause: boolean): void {
  const r = loadRecord(p, id);
  const status = statusOf(p, r);
  if (pause && status !== 'running') throw new TsrunError('STATE', `cannot pause container "${id}": it is ${status}`);
  if (!pause && status !== 'paused') throw new TsrunError('STATE', `cannot resume container "${id}": it is ${status}, not paused`);
  if (!r.cgroupsPath) throw new TsrunError('CGROUP', `container "${id}" has no cgroup to freeze`);
  setFrozen(k, r.cgroupsPath, pause);
}

export function killContainer(k: Kernel, p: Paths, id: string, signal: number, all: boolean): void {
  const r = loadRecord(p, id);
  const status = statusOf(p, r);
  if (status === 'stopped') throw new TsrunError('STATE', `container "${id}" is not running (it is stopped)`);
  const targets = all ? processesInPidns(r.pid) : [r.pid];
  for (const pid of targets.length ? targets : [r.pid]) {
    try {
      k.kill(pid, signal, `deliver signal ${signal} to container ${id}`);
    } catch (e) {
      if (pid === r.pid) throw wrap(`killing container ${id}`, e);
    }
  }
}

export async function deleteContainer(k: Kernel, p: Paths, id: string, force: boolean): Promise<void> {
  let r: ContainerRecord;
  try {
    r = loadRecord(p, id);
  } catch (e) {
    // A corrupt record cannot be trusted; with --force, remove what is there.
    if (force && e instanceof TsrunError && e.code === 'STATE') {
      rmSync(stateDir(p, id), { recursive: true, force: true });
      return;
    }
    throw e;
  }
  const status = statusOf(p, r);
  if (status === 'running' && !force) throw new TsrunError('STATE', `cannot delete container "${id}" that is running`, { hint: `stop it first, or: delete --force ${id}` });
  if (status !== 'stopped') {
    killQuietly(k, r.pid);
    const deadline = Date.now() + 10_000;
    while (isAlive(r.pid, r.pidStart) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  }
  if (r.cgroupsPath) removeStaleCgroup(k, r.cgroupsPath);
  runHooks(r.spec, 'poststop', ociState(p, r, 'stopped'));
  rmSync(stateDir(p, id), { recursive: true, force: true });
}

export function listContainers(p: Paths): ContainerRecord[] {
  let ids: string[] = [];
  try {
    ids = readdirSync(containersDir(p));
  } catch {
    return [];
  }
  const out: ContainerRecord[] = [];
  for (const id of ids) {
    try {
      out.push(loadRecord(p, id));
    } catch {
      /* a directory of a foreground run, or a corrupt one: not listed */
    }
  }
  return out;
}

export interface ExecRequest {
  process: NonNullable<Spec['process']>;
  detach: boolean;
  pidFile?: string;
  consoleSocket?: string;
  /** -i: pass stdin (always, for the runtime face: the caller decides what fd 0 is) */
  interactive: boolean;
}

/**
 * Runs another process in a running container: the setup thread joins the container's
 * namespaces (setns, mount last) instead of creating them, and applies the exec
 * process's own user, capabilities and no_new_privs. Returns the exit status, or the
 * pid when detached.
 */
export async function execInContainer(k: Kernel, p: Paths, id: string, req: ExecRequest): Promise<{ pid: number; exit: Promise<number> | null }> {
  requireRoot();
  const r = loadRecord(p, id);
  const status = statusOf(p, r);
  if (status !== 'running') throw new TsrunError('STATE', `cannot exec in a container that is ${status}`);
  const terminal = req.process.terminal === true;
  // Each exec has its own gate, in its own directory under the container's state.
  const dir = join(stateDir(p, id), `exec-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { mode: 0o711 });
  let pid: number | undefined;
  try {
    k.mkfifo(join(dir, GATE_NAME), 0o644);
    const launched = await launch(
      k,
      {
        mode: 'exec', spec: { ...r.spec, process: req.process }, rootfs: r.rootfs, bundle: r.bundle, stateDir: dir, joinPid: r.pid,
        tty: terminal ? { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 } : null,
        stdio: [0, 1, 2].map((fd) => ({ fd, from: { parentFd: fd } })), preserveFds: 0, trace: tracer.mode, color: false,
        lastCap: lastCap(() => readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')),
      },
      new Set(),
    );
    pid = launched.pid;
    // The exec'd process counts against the container's limits from its first instruction.
    containerCgroup(k, r)?.addProcess(pid);
    let restore: (() => void) | undefined;
    if (launched.ptyMaster !== null) {
      if (req.consoleSocket) {
        k.sendFd(req.consoleSocket, launched.ptyMaster);
        k.close(launched.ptyMaster);
      } else restore = attachTty(k, launched.ptyMaster, req.interactive);
    }
    const exit = req.detach ? null : waitExit(k, pid);
    openGate(k, dir, pid);
    await launched.started;
    if (req.pidFile) {
      writeFileSync(`${req.pidFile}.tmp-${process.pid}`, String(pid));
      renameSync(`${req.pidFile}.tmp-${process.pid}`, req.pidFile);
    }
    return {
      pid,
      exit: exit && exit.then(async (code) => {
        if (restore) {
          await drainTty();
          restore();
        }
        return code;
      }),
    };
  } catch (e) {
    if (pid !== undefined) killQuietly(k, pid);
    throw wrap(`exec in container ${id}`, e);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

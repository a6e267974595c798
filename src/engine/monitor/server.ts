import { setFrozen } from '../../cgroups/freeze.js';
// The shared monitor: one Node process (`tsrun __monitor`) for every detached
// container under one root. It launches them with the runtime core (so it is their
// parent and can waitid() them), writes their logs, records their exits and applies
// restart policies. It is started on demand and exits when nothing is left to watch.
//
// Budget: one Node process (~40-50 MB) for any number of containers, against one per
// container (docker's shim model), is what keeps the cost per container near zero.
//
// Crash safety:
//   - Each container's stdout/stderr is a FIFO under its runtime dir that the container
//     opened read-write: it holds a reader itself, so it never gets EPIPE/SIGPIPE while
//     no monitor runs (writes block once the 64 KiB pipe is full). A new monitor
//     reopens the FIFOs and drains them.
//   - A -dt container's pty master is also held by a host `sleep` started next to it
//     (its "holder", fd 3, outside the container's cgroup): a killed monitor then
//     closes only its own copy, so the terminal stays up and its shell gets no SIGHUP.
//     A new monitor copies the fd back out of the holder with pidfd_getfd(2).
//   - A -di container's stdin is a FIFO it holds read-write too (so it never reads EOF,
//     like docker's -i); `attach` opens it for writing itself, with or without a monitor.
//   - A container whose monitor was killed is reparented to init. A new monitor adopts
//     it by pid + start time and polls it; when it dies, init reaped it, so its exit code
//     is unknown: it is recorded as 255 with exitUnknown (documented in `inspect`).
import { spawn } from 'node:child_process';
import { closeSync, constants as FS, existsSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import { join } from 'node:path';
import type { Kernel, SpawnStdio } from '../../linux/kernel.js';
import { F_SETFD, FD_CLOEXEC, TIOCSWINSZ } from '../../linux/constants.js';
import { TsrunError, wrap } from '../../errors.js';
import { earlyFailure, killQuietly, launch, openGate } from '../../runtime/launcher.js';
import { GATE_NAME } from '../../runtime/protocol.js';
import { isAlive, procStartTime } from '../../runtime/proc-scan.js';
import { type Paths, stateDir } from '../../runtime/state.js';
import { lastCap } from '../../security/capabilities.js';
import { ContainerCgroup } from '../../cgroups/container.js';
import { removeStaleCgroup } from '../../cgroups/manager.js';
import { type MonitorState, type Record, killPtyHolder, listRecords, readRecord, recordDir, removeRecord, repairIfOrphaned, runtimeState, updateState, writeRuntimeState, observe } from '../containers.js';
import { LogWriter, logPath } from '../logs.js';
import type { MonitorReply, MonitorRequest } from './protocol.js';
import { socketPath } from './protocol.js';
import { runHealthcheck } from './health.js';
import { attachmentFromSpec, disconnectRunning, type NetworkAttachment } from '../../network/attach.js';

interface Watched {
  id: string;
  pid: number;
  pidStart: number;
  /** our child (waitid works) or adopted from a dead monitor (polled) */
  child: boolean;
  cgroup: ContainerCgroup | null;
  cgroupsPath: string;
  logs: LogWriter;
  pipes: net.Socket[];
  waiters: Array<(code: number) => void>;
  healthTimer?: NodeJS.Timeout;
  stopRequested: boolean;
  /** networking (issue 7): released when the container is gone */
  network?: NetworkAttachment;
  /** -t: the pty master, its holder process, and the CLIs attached to it */
  pty?: Pty;
}

interface Pty {
  fd: number;
  stream: tty.ReadStream;
  attached: Set<net.Socket>;
  holder?: { pid: number; start: number };
}

/**
 * How long an idle monitor waits for the next container before it exits
 * (TSRUN_MONITOR_LINGER_MS). Off by default: bench/lifecycle.mjs measured `run -d` with
 * the monitor starting at 215 ms, lingering 209 ms, already up 201 ms (medians, n=11,
 * 2026-11-26): the start is no longer on the critical path, and the difference was
 * within the noise, not worth an idle Node process per root.
 */
const LINGER_MS = ((v) => (v !== undefined && v !== '' && Number(v) >= 0 ? Number(v) : 0))(process.env.TSRUN_MONITOR_LINGER_MS);

/** The holder of a -dt container's pty master: any long sleeper of the host will do. */
const SLEEP = ['/usr/bin/sleep', '/bin/sleep'].find((p) => existsSync(p)) ?? 'sleep';
/** the holder's fd that carries the pty master */
const HOLDER_FD = 3;

const PIPE_NAMES = ['stdout', 'stderr'] as const;

export class Monitor {
  private readonly watched = new Map<string, Watched>();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  /** containers being started: their exit waiters wait for the start to settle */
  private readonly starting = new Set<string>();
  /** stopped (or killed) by a user since their last start: no restart policy applies */
  private readonly userStopped = new Set<string>();
  private readonly known = new Set<number>();
  /** `attach` connections for -t containers that are about to start (start -a) */
  private readonly pendingAttach = new Map<string, Set<net.Socket>>();
  private server: net.Server | null = null;
  private active = 0;
  /** exits being recorded (logs drained, cgroup removed, record written) */
  private finishing = 0;
  /** health probes running */
  private probes = 0;
  private readonly exitsInProgress = new Map<string, Promise<void>>();
  private launchChain: Promise<unknown> = Promise.resolve();
  private readonly me: { pid: number; start: number };
  private exiting = false;
  private idleTimer: NodeJS.Timeout | null = null;
  /** when the monitor last became idle (null: busy, or asked something since) */
  private idleSince: number | null = null;

  constructor(
    private readonly k: Kernel,
    private readonly paths: Paths,
  ) {
    this.me = { pid: process.pid, start: procStartTime(process.pid) ?? 0 };
  }

  private log(msg: string): void {
    process.stdout.write(`${new Date().toISOString()} monitor[${process.pid}]: ${msg}\n`);
  }

  /** Takes the monitor lock, adopts what a dead monitor left, listens. Returns false when another monitor serves. */
  async start(): Promise<boolean> {
    mkdirSync(this.paths.runRoot, { recursive: true, mode: 0o711 });
    if (!(await this.takeLock())) return false;
    try {
      unlinkSync(socketPath(this.paths.runRoot));
    } catch {
      /* none */
    }
    this.adoptAll();
    process.on('SIGCHLD', () => this.reap());
    // A reaper that also catches exits whose SIGCHLD coalesced with another.
    setInterval(() => {
      this.reap();
      this.pollAdopted();
    }, 500);
    this.server = net.createServer((c) => this.connection(c));
    await new Promise<void>((res, rej) => {
      this.server!.once('error', rej);
      this.server!.listen(socketPath(this.paths.runRoot), () => res());
    });
    this.log(`listening on ${socketPath(this.paths.runRoot)}`);
    // The command that started us connects within moments; give it time before idling out.
    this.scheduleIdleCheck(5000);
    return true;
  }

  private lockFile(): string {
    return join(this.paths.runRoot, 'monitor.pid');
  }

  private async takeLock(): Promise<boolean> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const fd = openSync(this.lockFile(), 'wx', 0o600);
        writeFileSync(fd, `${this.me.pid} ${this.me.start}\n`);
        closeSync(fd);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let owner = '';
      try {
        owner = readFileSync(this.lockFile(), 'utf8');
      } catch {
        continue;
      }
      const [pid, start] = owner.trim().split(' ').map(Number);
      if (owner.endsWith('\n') && pid && !isAlive(pid, start ?? -1)) {
        try {
          if (readFileSync(this.lockFile(), 'utf8') === owner) unlinkSync(this.lockFile());
        } catch {
          /* raced with another new monitor */
        }
        continue;
      }
      // A live monitor: if it answers, it serves; if it is on its way out, wait for it.
      if (await pingSocket(socketPath(this.paths.runRoot))) return false;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private adoptAll(): void {
    for (const { id, record } of listRecords(this.paths)) {
      if (!record || record.foreground) continue;
      const rt = runtimeState(this.paths, id);
      if (!rt) continue;
      if (rt.pid && rt.pidStart && observe(this.paths, record).status !== 'exited') {
        this.adopt(record, rt);
      } else if (rt.restarting && rt.monitor && !isAlive(rt.monitor.pid, rt.monitor.start)) {
        // Its restart was pending when the last monitor died: honour the policy now.
        this.restartTimers.set(id, setTimeout(() => {
          this.restartTimers.delete(id);
          this.startContainer(id, true).catch((e: unknown) => {
            rmSync(stateDir(this.paths, id), { recursive: true, force: true });
            this.log(`restart of ${id.slice(0, 12)} failed: ${(e as Error).message}`);
            this.scheduleIdleCheck(0);
          });
        }, 100));
      } else if (!rt.monitor || !isAlive(rt.monitor.pid, rt.monitor.start)) {
        // Died (or never started) while no monitor watched it.
        killPtyHolder(rt.ptyHolder);
        if (rt.cgroupsPath) this.removeCgroupQuietly(rt.cgroupsPath);
        repairIfOrphaned(this.paths, record);
      }
    }
  }

  private adopt(r: Record, rt: MonitorState): void {
    const dir = stateDir(this.paths, r.id);
    const w: Watched = {
      id: r.id, pid: rt.pid!, pidStart: rt.pidStart!, child: false, cgroup: null, cgroupsPath: rt.cgroupsPath ?? '',
      logs: new LogWriter(logPath(recordDir(this.paths, r.id), r.id), r.hostConfig.logConfig.maxSize, r.hostConfig.logConfig.maxFile),
      pipes: [], waiters: [], stopRequested: false,
    };
    for (const s of PIPE_NAMES) {
      const fifo = join(dir, `${s}.fifo`);
      if (existsSync(fifo)) w.pipes.push(this.readPipe(fifo, s, w.logs));
    }
    if (rt.ptyHolder) {
      try {
        const fd = this.recoverPty(rt.ptyHolder);
        w.pty = this.watchPty(fd, w.logs);
        w.pty.holder = rt.ptyHolder;
      } catch (e) {
        this.log(`the terminal of ${r.id.slice(0, 12)} is lost: ${(e as Error).message}`);
        killPtyHolder(rt.ptyHolder);
      }
    }
    writeRuntimeState(this.paths, { ...rt, monitor: this.me });
    this.watched.set(r.id, w);
    this.startHealth(r, w);
    this.log(`adopted ${r.id.slice(0, 12)} (pid ${w.pid})`);
  }

  /** The pty master back from its holder: pidfd_open, then pidfd_getfd of its fd 3. */
  private recoverPty(holder: { pid: number; start: number }): number {
    const pidfd = this.k.pidfdOpen(holder.pid, 'the pty holder of a container adopted from a dead monitor');
    try {
      // Checked after pidfd_open: the pidfd now pins this process, so a pid reused
      // between the check and the copy cannot hand us another process's fd.
      if (!isAlive(holder.pid, holder.start)) throw new TsrunError('STATE', `the pty holder (pid ${holder.pid}) is gone`);
      return this.k.pidfdGetfd(pidfd, HOLDER_FD, 'copy the pty master out of its holder');
    } finally {
      this.k.close(pidfd);
    }
  }

  /** Reads a pty master: into the log as stdout (docker's json-file does the same) and out to every attached CLI. */
  private watchPty(fd: number, logs: LogWriter): Pty {
    const stream = new tty.ReadStream(fd);
    const pty: Pty = { fd, stream, attached: new Set() };
    stream.on('data', (chunk: Buffer) => {
      logs.write('stdout', chunk);
      for (const c of pty.attached) c.write(chunk);
    });
    stream.on('error', () => {}); // EIO once every holder of the slave is gone
    return pty;
  }

  private addAttached(pty: Pty, c: net.Socket, first: Buffer): void {
    pty.attached.add(c);
    // The master end is a stream libuv writes without blocking: keystrokes wait in its
    // queue while the terminal's input buffer is full, and the monitor stays responsive.
    const input = (d: Buffer): void => {
      if (!pty.stream.destroyed) pty.stream.write(d);
    };
    if (first.length) input(first);
    c.on('data', input);
    c.resume();
    c.on('close', () => pty.attached.delete(c));
    c.on('error', () => {});
  }

  private readPipe(fifo: string, stream: 'stdout' | 'stderr', logs: LogWriter): net.Socket {
    // O_RDWR: never EOF while the container runs, and epoll-able by libuv (a pipe in a
    // net.Socket), so 100 streams do not tie up libuv's 4 blocking fs threads.
    const fd = openSync(fifo, FS.O_RDWR | FS.O_NONBLOCK);
    const sock = new net.Socket({ fd, readable: true, writable: false });
    sock.on('data', (chunk: Buffer) => logs.write(stream, chunk));
    sock.on('error', () => {});
    return sock;
  }

  // --------------------------------------------------------------------------------

  private connection(c: net.Socket): void {
    this.active++;
    this.idleSince = null; // asked again: the grace starts over
    let buf = '';
    let done = false;
    const finish = (reply: MonitorReply): void => {
      if (done) return;
      done = true;
      this.active--;
      const idle = this.idle();
      const exiting = idle && LINGER_MS === 0;
      c.end(JSON.stringify({ ...reply, monitorPid: process.pid, exiting }) + '\n');
      if (idle) this.scheduleIdleCheck(0);
    };
    c.on('error', () => finish({ ok: false }));
    c.on('close', () => finish({ ok: false }));
    let raw = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      raw = Buffer.concat([raw, d]);
      const nl = raw.indexOf(10);
      if (nl < 0) return;
      buf = raw.subarray(0, nl).toString();
      let req: MonitorRequest;
      try {
        req = JSON.parse(buf) as MonitorRequest;
      } catch {
        finish({ ok: false, error: { code: 'INTERNAL', message: 'bad request' } });
        return;
      }
      c.removeListener('data', onData);
      if (req.op === 'attach') {
        try {
          this.attachPty(c, req.id, raw.subarray(nl + 1));
        } catch (e) {
          const err = e instanceof TsrunError ? e : wrap('monitor', e, 'INTERNAL');
          finish({ ok: false, error: { code: err.code, message: err.message, hint: err.hint } });
          return;
        }
        // The reply line, then the connection is the terminal's byte stream.
        done = true;
        this.active--;
        c.write(JSON.stringify({ ok: true, monitorPid: process.pid } satisfies MonitorReply) + '\n');
        return;
      }
      this.handle(req).then(finish, (e: unknown) => {
        const err = e instanceof TsrunError ? e : wrap('monitor', e, 'INTERNAL');
        finish({ ok: false, error: { code: err.code, message: err.message, hint: err.hint } });
      });
    };
    c.on('data', onData);
  }

  private attachPty(c: net.Socket, id: string, first: Buffer): void {
    const w = this.watched.get(id);
    if (w) {
      if (!w.pty) throw new TsrunError('USAGE', `container ${id.slice(0, 12)} has no terminal (it was not run with -t)`);
      this.addAttached(w.pty, c, first);
      return;
    }
    const r = readRecord(this.paths, id);
    if (r.spec.process?.terminal !== true) throw new TsrunError('USAGE', `container ${id.slice(0, 12)} has no terminal (it was not run with -t)`);
    // Not started yet (start -a): attached when its pty exists, before its gate opens,
    // so not a byte of its first output is missed.
    let set = this.pendingAttach.get(id);
    if (!set) this.pendingAttach.set(id, (set = new Set()));
    set.add(c);
    c.on('close', () => {
      set.delete(c);
      if (set.size === 0 && this.pendingAttach.get(id) === set) this.pendingAttach.delete(id);
      this.scheduleIdleCheck(0);
    });
    c.on('error', () => {});
    c.pause();
    if (first.length) c.unshift(first);
  }

  private async handle(req: MonitorRequest): Promise<MonitorReply> {
    switch (req.op) {
      case 'ping':
        return { ok: true };
      case 'start': {
        this.userStopped.delete(req.id);
        this.cancelRestart(req.id);
        const pid = await this.startContainer(req.id, false);
        return { ok: true, pid };
      }
      case 'stop': {
        this.userStopped.add(req.id);
        this.cancelRestart(req.id);
        // A restart in flight: let it settle, then stop what it started.
        while (this.starting.has(req.id)) await new Promise((r) => setTimeout(r, 20));
        const w = this.watched.get(req.id);
        if (!w) {
          await this.exitsInProgress.get(req.id);
          return { ok: true, exitCode: this.recordedExit(req.id) };
        }
        w.stopRequested = true;
        updateState(this.paths, req.id, (s) => {
          s.stoppedByUser = true;
        });
        const exited = this.exitOf(w);
        this.thaw(w);
        this.signal(w, req.signal ?? 15);
        const timeout = (req.timeout ?? 10) * 1000;
        const timer = setTimeout(() => this.signal(w, 9), Math.max(0, timeout));
        const code = await exited;
        clearTimeout(timer);
        return { ok: true, exitCode: code };
      }
      case 'kill': {
        const w = this.watched.get(req.id);
        if (!w) throw new TsrunError('STATE', `container ${req.id.slice(0, 12)} is not running`);
        if (req.signal === 9 || req.signal === 15) {
          // docker: a kill by the user counts as a manual stop for unless-stopped.
          w.stopRequested = true;
          this.userStopped.add(req.id);
          this.cancelRestart(req.id);
        }
        if (req.signal === 9) this.thaw(w);
        this.signal(w, req.signal);
        return { ok: true };
      }
      case 'wait': {
        for (;;) {
          const w = this.watched.get(req.id);
          if (w) {
            await this.exitOf(w);
            if (this.restartTimers.has(req.id)) {
              // docker's wait (condition not-running) returns at the first exit.
            }
            return { ok: true, exitCode: this.recordedExit(req.id) };
          }
          const inProgress = this.exitsInProgress.get(req.id);
          if (inProgress) {
            await inProgress;
            continue;
          }
          if (this.starting.has(req.id)) {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          return { ok: true, exitCode: this.recordedExit(req.id) };
        }
      }
      case 'pause':
      case 'unpause': {
        const w = this.watched.get(req.id);
        if (!w) throw new TsrunError('STATE', `container ${req.id.slice(0, 12)} is not running`);
        this.freeze(w, req.op === 'pause');
        const rt = runtimeState(this.paths, req.id);
        if (rt) writeRuntimeState(this.paths, { ...rt, paused: req.op === 'pause' });
        return { ok: true };
      }
      case 'resize': {
        const w = this.watched.get(req.id);
        if (!w?.pty) return { ok: true }; // gone meanwhile, or no terminal: nothing to size
        const ws = Buffer.alloc(8);
        ws.writeUInt16LE(req.rows, 0);
        ws.writeUInt16LE(req.cols, 2);
        try {
          this.k.ioctl(w.pty.fd, TIOCSWINSZ, ws, 'the attached terminal\'s size; the kernel sends SIGWINCH to the container');
        } catch {
          /* the terminal is closing */
        }
        return { ok: true };
      }
      case 'attach':
        throw new TsrunError('INTERNAL', 'attach is handled on its connection');
      case 'forget': {
        this.userStopped.add(req.id);
        this.cancelRestart(req.id);
        while (this.starting.has(req.id)) await new Promise((r) => setTimeout(r, 20));
        const w = this.watched.get(req.id);
        if (w) {
          w.stopRequested = true;
          const exited = this.exitOf(w);
          this.thaw(w);
          this.signal(w, 9);
          await exited;
        }
        return { ok: true };
      }
    }
  }

  private recordedExit(id: string): number {
    try {
      return readRecord(this.paths, id).state.exitCode ?? 0;
    } catch {
      return 0;
    }
  }

  private exitOf(w: Watched): Promise<number> {
    return new Promise((res) => w.waiters.push(res));
  }

  private signal(w: Watched, sig: number): void {
    try {
      this.k.kill(w.pid, sig, `deliver signal ${sig} to container ${w.id.slice(0, 12)}`);
    } catch {
      /* already gone */
    }
  }

  // --------------------------------------------------------------------------------
  // Freezer: the cgroup v1 freezer (FROZEN/THAWED) or v2's cgroup.freeze.

  private freeze(w: Watched, on: boolean): void {
    setFrozen(this.k, w.cgroupsPath, on);
  }

  private thaw(w: Watched): void {
    try {
      const rt = runtimeState(this.paths, w.id);
      if (rt?.paused) {
        this.freeze(w, false);
        writeRuntimeState(this.paths, { ...rt, paused: false });
      }
    } catch {
      /* best effort: a frozen v1 task does not act on SIGKILL until thawed */
    }
  }

  // --------------------------------------------------------------------------------

  /** Launches are serialized: launch() finds the new child as "a child of ours not seen before". */
  serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.launchChain.then(f);
    this.launchChain = p.catch(() => {});
    return p;
  }

  private startContainer(id: string, restart: boolean): Promise<number> {
    if (this.starting.has(id)) return Promise.reject(new TsrunError('STATE', `container ${id.slice(0, 12)} is being started already`));
    this.starting.add(id);
    return this.doStart(id, restart).finally(() => this.starting.delete(id));
  }

  private async doStart(id: string, restart: boolean): Promise<number> {
    const r = readRecord(this.paths, id);
    if (this.watched.has(id)) throw new TsrunError('STATE', `container ${id.slice(0, 12)} is already running`);
    const o = observe(this.paths, r);
    if (o.status === 'running' || o.status === 'paused') throw new TsrunError('STATE', `container ${id.slice(0, 12)} is running under another watcher (pid ${o.pid})`);
    const dir = stateDir(this.paths, id);
    rmSync(dir, { recursive: true, force: true });
    const cgroup = new ContainerCgroup(this.k, id, r.spec);
    let base: MonitorState = { id, status: 'creating', monitor: this.me, bundle: r.bundle, rootfs: r.rootfs, created: r.created, cgroupsPath: cgroup.path };
    writeRuntimeState(this.paths, base);
    const logs = new LogWriter(logPath(recordDir(this.paths, id), id), r.hostConfig.logConfig.maxSize, r.hostConfig.logConfig.maxFile);
    const pipes: net.Socket[] = [];
    const childFds: number[] = [];
    let pid: number | undefined;
    let pty: Pty | undefined;
    let network: NetworkAttachment | undefined;
    try {
      // networking (issue 7): the same three steps as a foreground run; the monitor owns the endpoint.
      network = attachmentFromSpec(r.spec, this.paths, id);
      await network?.prepare();
      this.k.mkfifo(join(dir, GATE_NAME), 0o644);
      const terminal = r.spec.process?.terminal === true;
      for (const s of terminal ? [] : PIPE_NAMES) {
        const fifo = join(dir, `${s}.fifo`);
        this.k.mkfifo(fifo, 0o600, `the container's ${s}: a FIFO the monitor reads and a new monitor can reopen`);
        pipes.push(this.readPipe(fifo, s, logs));
        // The container's end is read-write too: it holds a reader itself, so a killed
        // monitor never turns its writes into SIGPIPE.
        childFds.push(openSync(fifo, FS.O_RDWR));
      }
      let stdin: SpawnStdio['from'] = { path: '/dev/null', flags: 0 };
      if (!terminal && r.openStdin) {
        const fifo = join(dir, 'stdin.fifo');
        this.k.mkfifo(fifo, 0o600, 'the container\'s stdin (-i): a FIFO that attach writes, with or without a monitor');
        // Read-write in the container, so it never reads EOF when an attach ends
        // (docker's -i without StdinOnce).
        childFds.push(openSync(fifo, FS.O_RDWR));
        stdin = { parentFd: childFds[2]! };
      }
      cgroup.create();
      const stdio: SpawnStdio[] = terminal ? [] : [
        { fd: 0, from: stdin },
        { fd: 1, from: { parentFd: childFds[0]! } },
        { fd: 2, from: { parentFd: childFds[1]! } },
      ];
      const launched = await this.serial(() => launch(
        this.k,
        {
          mode: 'create', spec: r.spec, rootfs: r.rootfs, overlay: r.overlay, bundle: r.bundle, stateDir: dir,
          // -dt: the monitor holds the pty master and logs what comes out as stdout
          // (docker's json-file does the same); it dies with the monitor (documented).
          tty: terminal ? { rows: r.spec.process?.consoleSize?.height ?? 24, cols: r.spec.process?.consoleSize?.width ?? 80 } : null,
          stdio, preserveFds: 0, trace: 'off', color: false,
          lastCap: lastCap(() => readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')),
          cgroupThreadFiles: cgroup.threadFiles(),
        },
        this.known,
      ).then((l) => {
        this.known.add(l.pid);
        // Inside the launch chain: the holder is a new child too, and a launch running
        // meanwhile must not take it for its container.
        if (l.ptyMaster !== null) base = { ...base, ptyHolder: this.startHolder(l.ptyMaster, dir) };
        return l;
      }));
      pid = launched.pid;
      for (const fd of childFds.splice(0)) closeSync(fd);
      if (launched.ptyMaster !== null) {
        pty = this.watchPty(launched.ptyMaster, logs);
        if (base.ptyHolder) pty.holder = base.ptyHolder;
        const waiting = this.pendingAttach.get(id);
        this.pendingAttach.delete(id);
        for (const c of waiting ?? []) this.addAttached(pty, c, Buffer.alloc(0));
      }
      try {
        cgroup.attach(pid, launched.setupTid);
        network?.attach(pid);
      } catch (e) {
        throw (await earlyFailure(launched)) ?? e;
      }
      const pidStart = procStartTime(pid) ?? 0;
      writeRuntimeState(this.paths, { ...base, status: 'created', pid, pidStart });
      const w: Watched = { id, pid, pidStart, child: true, cgroup, cgroupsPath: cgroup.path, logs, pipes, waiters: [], stopRequested: false, ...(network ? { network } : {}), ...(pty ? { pty } : {}) };
      // Recorded before the gate opens: the reaper may record an exit as soon as it does.
      updateState(this.paths, id, (s) => {
        s.startedAt = new Date().toISOString();
        delete s.finishedAt;
        delete s.exitCode;
        delete s.exitUnknown;
        delete s.error;
        s.oomKilled = false;
        s.stoppedByUser = false;
        if (restart) s.restartCount += 1;
        if (s.health) s.health = { status: 'starting', failingStreak: 0, log: [] };
      });
      this.watched.set(id, w);
      openGate(this.k, dir, pid);
      try {
        rmSync(join(dir, GATE_NAME), { force: true });
        await launched.started;
      } catch (e) {
        // execve failed: the child exits 127 (glibc); the reaper records it.
        updateState(this.paths, id, (s) => {
          s.error = (e as Error).message;
        });
        throw e;
      }
      if (this.watched.get(id) === w) writeRuntimeState(this.paths, { ...base, status: 'running', pid, pidStart });
      this.startHealth(readRecord(this.paths, id), w);
      this.reap(); // it may have exited already
      return pid;
    } catch (e) {
      for (const fd of childFds) closeSync(fd);
      if (pid === undefined || !this.watched.has(id)) {
        if (pid !== undefined) killQuietly(this.k, pid);
        for (const s of pipes) s.destroy();
        this.closePty(pty ?? null, base.ptyHolder);
        for (const c of this.pendingAttach.get(id) ?? []) c.destroy();
        this.pendingAttach.delete(id);
        logs.close();
        try {
          cgroup.remove();
        } catch {
          /* swept later */
        }
        try {
          network?.release();
        } catch {
          /* collectNetworkGarbage retries */
        }
        rmSync(dir, { recursive: true, force: true });
        updateState(this.paths, id, (s) => {
          s.error = (e as Error).message;
        });
      }
      throw wrap('starting container', e);
    }
  }

  private startHealth(r: Record, w: Watched): void {
    if (!r.healthcheck || r.healthcheck.test.length === 0) return;
    const hc = r.healthcheck;
    const begun = Date.now();
    const tick = async (): Promise<void> => {
      if (!this.watched.has(w.id)) return;
      this.probes++;
      const res = await runHealthcheck(this.k, this.paths, w.id, hc, (f) => this.serial(f), this.known).catch((e: unknown) => ({ exitCode: -1, output: (e as Error).message, start: new Date().toISOString(), end: new Date().toISOString() }));
      this.probes--;
      if (!this.watched.has(w.id)) {
        this.scheduleIdleCheck(0);
        return;
      }
      updateState(this.paths, w.id, (s) => {
        const h = s.health ?? { status: 'starting', failingStreak: 0, log: [] };
        h.log = [...h.log, { start: res.start, end: res.end, exitCode: res.exitCode, output: res.output }].slice(-5);
        if (res.exitCode === 0) {
          h.status = 'healthy';
          h.failingStreak = 0;
        } else if (Date.now() - begun >= hc.startPeriodMs || h.status !== 'starting') {
          h.failingStreak += 1;
          if (h.failingStreak >= hc.retries) h.status = 'unhealthy';
        }
        s.health = h;
      });
      w.healthTimer = setTimeout(() => void tick(), hc.intervalMs);
    };
    updateState(this.paths, w.id, (s) => {
      s.health ??= { status: 'starting', failingStreak: 0, log: [] };
    });
    w.healthTimer = setTimeout(() => void tick(), hc.intervalMs);
  }

  private reap(): void {
    for (const w of this.watched.values()) {
      if (!w.child) continue;
      let r;
      try {
        r = this.k.wait(w.pid, true);
      } catch {
        continue;
      }
      if (!r) continue;
      this.known.delete(w.pid);
      void this.exited(w, r.code ?? 128 + (r.signal ?? 0), false);
    }
  }

  private pollAdopted(): void {
    for (const w of this.watched.values()) {
      if (w.child) continue;
      let gone = procStartTime(w.pid) !== w.pidStart;
      if (!gone) {
        try {
          const st = readFileSync(`/proc/${w.pid}/stat`, 'utf8');
          gone = st[st.lastIndexOf(')') + 2] === 'Z';
        } catch {
          gone = true;
        }
      }
      if (gone) void this.exited(w, 255, true);
    }
  }

  private async exited(w: Watched, code: number, unknown: boolean): Promise<void> {
    if (this.watched.get(w.id) !== w) return;
    this.watched.delete(w.id);
    this.finishing++;
    const recorded = this.recordExit(w, code, unknown);
    this.exitsInProgress.set(w.id, recorded.catch(() => {}));
    try {
      await recorded;
    } finally {
      this.exitsInProgress.delete(w.id);
      this.finishing--;
      this.scheduleIdleCheck(0);
    }
  }

  private async recordExit(w: Watched, code: number, unknown: boolean): Promise<void> {
    if (w.healthTimer) clearTimeout(w.healthTimer);
    // What the container wrote just before it died is still in the pipes.
    await new Promise((r) => setTimeout(r, 30));
    for (const s of w.pipes) s.destroy();
    // Attached CLIs stay connected until the exit is recorded: they read it from the
    // record when their stream closes (this monitor may be gone by the time they ask).
    const attached = [...(w.pty?.attached ?? [])];
    w.pty?.attached.clear();
    this.closePty(w.pty ?? null, w.pty?.holder);
    w.logs.close();
    let oom = false;
    try {
      if (w.cgroup) oom = w.cgroup.finish();
      else if (w.cgroupsPath) removeStaleCgroup(this.k, w.cgroupsPath);
    } catch (e) {
      this.log(`cgroup of ${w.id.slice(0, 12)}: ${(e as Error).message}`);
    }
    try {
      // An adopted container's endpoint was made by the dead monitor: release it by id.
      if (w.network) w.network.release();
      else if (!w.child) disconnectRunning(this.paths.root, w.id);
    } catch (e) {
      this.log(`network of ${w.id.slice(0, 12)}: ${(e as Error).message}`);
    }
    const r = updateState(this.paths, w.id, (s) => {
      s.finishedAt = new Date().toISOString();
      s.exitCode = code;
      if (unknown) {
        s.exitUnknown = true;
        s.error = 'the container exited while no tsrun process was its parent: its exit status is unknown';
      }
      s.oomKilled = oom;
      if (s.health) s.health.status = 'unhealthy';
    });
    rmSync(stateDir(this.paths, w.id), { recursive: true, force: true });
    for (const c of attached) c.end();
    this.log(`${w.id.slice(0, 12)} exited with ${code}${unknown ? ' (unknown)' : ''}`);
    for (const f of w.waiters.splice(0)) f(code);
    if (r) {
      const delay = this.restartDelay(r, code, w.stopRequested || this.userStopped.has(w.id));
      if (delay !== null) {
        writeRuntimeState(this.paths, { id: w.id, status: 'stopped', monitor: this.me, restarting: true, bundle: r.bundle, rootfs: r.rootfs, created: r.created });
        this.restartTimers.set(w.id, setTimeout(() => {
          this.restartTimers.delete(w.id);
          if (this.userStopped.has(w.id)) return;
          this.startContainer(w.id, true).catch((e: unknown) => {
            rmSync(stateDir(this.paths, w.id), { recursive: true, force: true });
            this.log(`restart of ${w.id.slice(0, 12)} failed: ${(e as Error).message}`);
            this.scheduleIdleCheck(0);
          });
        }, delay));
      } else if (r.hostConfig.autoRemove) {
        removeRecord(this.paths, w.id);
      }
    }
    this.scheduleIdleCheck(0);
  }

  /** docker's rules, with its backoff: 100 ms doubling per restart, at most 1 min. */
  private restartDelay(r: Record, code: number, stopped: boolean): number | null {
    const pol = r.hostConfig.restartPolicy;
    if (stopped || pol.name === 'no') return null;
    if (pol.name === 'on-failure') {
      if (code === 0) return null;
      if (pol.maximumRetryCount > 0 && r.state.restartCount >= pol.maximumRetryCount) return null;
    }
    return Math.min(100 * 2 ** Math.min(r.state.restartCount, 10), 60_000);
  }

  private cancelRestart(id: string): void {
    const t = this.restartTimers.get(id);
    if (t) {
      clearTimeout(t);
      this.restartTimers.delete(id);
      const rt = runtimeState(this.paths, id);
      if (rt?.restarting) rmSync(stateDir(this.paths, id), { recursive: true, force: true });
    }
  }

  /**
   * Starts the pty master's holder: the host's `sleep` with the master as its fd 3, in
   * its own session and in the monitor's cgroup (not the container's), cwd in the
   * container's runtime dir (so it is found by what it belongs to).
   */
  private startHolder(master: number, dir: string): { pid: number; start: number } | undefined {
    // The setup thread opened the master without O_CLOEXEC (the container's child closes
    // it before execve anyway); libuv does not close stray fds in the children it
    // spawns, so without this every later holder would also hold this terminal.
    this.k.fcntl(master, F_SETFD, FD_CLOEXEC);
    try {
      const h = spawn(SLEEP, ['infinity'], { stdio: ['ignore', 'ignore', 'ignore', master], cwd: dir, detached: true });
      h.on('error', (e) => this.log(`pty holder: ${e.message}`));
      if (h.pid === undefined) return undefined;
      const pid = h.pid;
      this.known.add(pid);
      h.on('exit', () => this.known.delete(pid));
      h.unref();
      return { pid, start: procStartTime(pid) ?? 0 };
    } catch (e) {
      // Without a holder the terminal only lives as long as this monitor (as before).
      this.log(`no pty holder: ${(e as Error).message}`);
      return undefined;
    }
  }

  private closePty(pty: Pty | null, holder: { pid: number; start: number } | undefined): void {
    if (pty) {
      for (const c of pty.attached) c.end();
      pty.attached.clear();
      pty.stream.destroy();
    }
    killPtyHolder(holder);
  }

  private removeCgroupQuietly(path: string): void {
    try {
      removeStaleCgroup(this.k, path);
    } catch {
      /* swept by a later command */
    }
  }

  // --------------------------------------------------------------------------------

  private idle(): boolean {
    return this.watched.size === 0 && this.pendingAttach.size === 0 && this.restartTimers.size === 0 && this.starting.size === 0 && this.active === 0 && this.finishing === 0 && this.probes === 0;
  }

  private scheduleIdleCheck(ms: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (!this.idle()) {
        this.idleSince = null;
        return;
      }
      this.idleSince ??= Date.now();
      const left = this.idleSince + LINGER_MS - Date.now();
      // A runtime dir that is gone (a reboot's tmpfs, a test's temp root) has nobody to wait for.
      if (left <= 0 || !existsSync(socketPath(this.paths.runRoot))) this.exit();
      else this.scheduleIdleCheck(Math.min(left, 1000));
    }, ms);
  }

  private exit(): void {
    if (this.exiting) return;
    this.exiting = true;
    this.log('nothing left to watch: exiting');
    this.server?.close();
    try {
      unlinkSync(socketPath(this.paths.runRoot));
    } catch {
      /* gone */
    }
    try {
      unlinkSync(this.lockFile());
    } catch {
      /* gone */
    }
    process.exit(0);
  }
}

export function pingSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    const t = setTimeout(() => {
      c.destroy();
      resolve(false);
    }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify({ op: 'ping' }) + '\n'));
    c.on('data', () => {
      clearTimeout(t);
      c.destroy();
      resolve(true);
    });
    c.on('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export async function runMonitor(k: Kernel, paths: Paths): Promise<void> {
  const m = new Monitor(k, paths);
  if (!(await m.start())) process.exit(0);
}

// The cgroup side of one container's life, as the run path uses it:
//   prepare()  before the setup worker starts: the path is known and recorded in state;
//   create()   mkdir, controllers delegated, no limits yet (the v1 setup thread joins
//              it before unsharing its cgroup namespace, so the namespace's root is
//              the container's cgroup);
//   attach()   after launch() found the gated child, before the gate opens: limits,
//              then the child, so not one instruction of the program runs unlimited;
//   finish()   after the exit: read OOM kills, kill what is left, remove the cgroup.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TsrunError } from '../errors.js';
import type { Kernel } from '../linux/kernel.js';
import { tracer } from '../trace/tracer.js';
import type { Spec } from '../spec/types.js';
import { detectCgroups } from './detect.js';
import { cgroupManager, defaultCgroupsPath } from './manager.js';
import type { CgroupManager, Resources } from './types.js';

export const OOM_MESSAGE = 'the container was killed because it exceeded its memory limit';


export class ContainerCgroup {
  readonly path: string;
  private m: CgroupManager | null = null;
  private created = false;
  private holder: ChildProcess | null = null;
  /** the setup thread joined the v1 hierarchies (threadFiles), so its child starts inside */
  private joinedByThread = false;

  constructor(
    private readonly k: Kernel,
    id: string,
    private readonly spec: Spec,
  ) {
    this.path = spec.linux?.cgroupsPath ?? defaultCgroupsPath(id);
  }

  create(): void {
    const layout = detectCgroups();
    if (layout.mode === 'none') {
      // Device rules alone are no reason to refuse: every `tsrun run` spec carries them,
      // and without a cgroup filesystem nothing can enforce them (nor anything else).
      if (this.spec.linux?.resources && Object.keys(this.spec.linux.resources).some((key) => key !== 'devices')) {
        throw new TsrunError('CGROUP', 'linux.resources asks for limits, but this host has no cgroup filesystem mounted', { hint: 'mount cgroup2 at /sys/fs/cgroup' });
      }
      return;
    }
    const t0 = tracer.on ? tracer.now() : undefined;
    this.m = cgroupManager(this.k, this.path, layout);
    this.m.create();
    this.created = true;
    tracer.step('step', 'cgroup-create', `${this.m.version} ${this.path}`, `the container's own cgroup (${layout.mode} host: ${this.m.dirs().join(', ')})`, t0);
  }

  /** v1: the `tasks` files the setup thread writes its tid into before unshare(CLONE_NEWCGROUP). */
  threadFiles(): string[] {
    const files = this.m?.threadFiles() ?? [];
    this.joinedByThread = files.length > 0;
    return files;
  }

  /**
   * The spec the setup thread works from. On v2 a single thread cannot join a domain
   * cgroup (its threads all share one), so the setup thread cannot be inside the
   * container's cgroup when it unshares CLONE_NEWCGROUP, and the namespace's root
   * would be tsrun's own cgroup. Instead a holder process is moved into the container's
   * cgroup and only then runs `unshare --cgroup` (util-linux); the setup thread joins
   * that namespace with setns(), and the holder is killed once the container exists.
   * Without util-linux's unshare the old behaviour stays (the root is tsrun's cgroup).
   */
  async setupSpec(): Promise<Spec> {
    const spec = this.spec;
    const nss = spec.linux?.namespaces ?? [];
    const i = nss.findIndex((n) => n.type === 'cgroup' && !n.path);
    if (!this.m || this.m.version === 'v1' || i < 0) return spec;
    const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p));
    if (!unshare) {
      tracer.step('step', 'cgroupns-holder', 'skipped', 'no util-linux unshare: the cgroup namespace\'s root stays tsrun\'s cgroup');
      return spec;
    }
    const t0 = tracer.on ? tracer.now() : undefined;
    const own = readlinkSync('/proc/self/ns/cgroup');
    // The holder waits on stdin until it is in the cgroup; then it unshares and sleeps.
    const h = spawn('/bin/sh', ['-c', `read go; exec ${unshare} --cgroup sleep 600`], { stdio: ['pipe', 'ignore', 'ignore'] });
    this.holder = h;
    h.on('error', () => {});
    if (!h.pid) throw new TsrunError('CGROUP', 'could not start the cgroup namespace holder (/bin/sh)');
    this.m.addProcess(h.pid);
    h.stdin!.end('go\n');
    const path = `/proc/${h.pid}/ns/cgroup`;
    const deadline = Date.now() + 5000;
    for (;;) {
      let ns = own;
      try {
        ns = readlinkSync(path);
      } catch {
        /* exec in progress */
      }
      if (ns !== own && /unshare|sleep/.test(procComm(h.pid))) break;
      if (h.exitCode !== null || Date.now() > deadline) {
        this.dropHolder();
        throw new TsrunError('CGROUP', 'the cgroup namespace holder did not start', { hint: `${unshare} --cgroup must work on this host` });
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    tracer.step('step', 'cgroupns-holder', `pid ${h.pid}`, 'a process inside the container\'s v2 cgroup made the cgroup namespace the setup thread joins', t0);
    const namespaces = nss.map((n, j) => (j === i ? { type: 'cgroup' as const, path } : n));
    return { ...spec, linux: { ...spec.linux, namespaces } };
  }

  /** tsrun's children that are not the container (launch() looks for a new child). */
  ownChildren(): Set<number> {
    return new Set(this.holder?.pid ? [this.holder.pid] : []);
  }

  private dropHolder(): void {
    if (this.holder && this.holder.exitCode === null) this.holder.kill('SIGKILL');
    this.holder = null;
  }

  attach(pid: number, setupTid?: number): void {
    // The setup thread has joined the holder's namespace by now; the holder may go.
    this.dropHolder();
    if (!this.m) return;
    const res = (this.spec.linux?.resources ?? {}) as Resources;
    this.m.apply(res);
    // On v1 the setup thread joined every hierarchy before it cloned the child, which
    // inherited that. Moving it again would cost one RCU grace period per hierarchy
    // (about 8 ms here) for nothing; check instead, and move only what is elsewhere.
    if (!this.joinedByThread || !this.contains(pid)) this.m.addProcess(pid);
    // The setup thread is a task in those v1 cgroups until Node has torn the worker
    // down, which can be after the command has started: under a pids limit it would
    // take one of the container's pids. It leaves the pids cgroup for its parent (one
    // that tsrun made) before the gate opens. No other controller counts tasks.
    if (this.joinedByThread && setupTid && (res.pids?.limit ?? 0) > 0) {
      const tasks = this.m.threadFiles().find((f) => f.includes('/pids/'));
      if (tasks) this.k.writeFile(join(dirname(dirname(tasks)), 'tasks'), String(setupTid), 'the setup thread leaves the container\'s pids cgroup, so every one of its pids is the container\'s');
    }
    tracer.step('step', 'cgroup-attach', `pid ${pid}`, 'limits written, and the gated process is in the cgroup before it execs');
  }

  /** Whether /proc/PID/cgroup puts the process in this container's cgroup in every v1 hierarchy. */
  private contains(pid: number): boolean {
    let lines: string[];
    try {
      lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
    } catch {
      return false;
    }
    const want = '/' + this.path.replace(/^\/+/, '');
    const v1 = lines.filter((l) => !l.startsWith('0::') && !l.includes(':name='));
    return v1.length > 0 && v1.every((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1) === want || !this.m!.dirs().some((d) => d.includes(`/${l.split(':')[1]}/`)));
  }

  /** Returns whether the OOM killer struck in the container's cgroup. */
  finish(): boolean {
    if (!this.m || !this.created) return false;
    let oom = false;
    try {
      oom = this.m.oomKills() > 0;
    } catch {
      /* the memory controller may be absent */
    }
    if (oom) tracer.step('step', 'oom-kill', this.path, 'memory.events / memory.oom_control count an OOM kill in the container\'s cgroup');
    this.remove();
    return oom;
  }

  /** Kill and remove; safe to call more than once and after a failure. */
  remove(): void {
    this.dropHolder();
    if (!this.m || !this.created) return;
    try {
      this.m.kill();
    } finally {
      this.m.destroy();
      this.created = false;
    }
  }
}

function procComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8');
  } catch {
    return '';
  }
}

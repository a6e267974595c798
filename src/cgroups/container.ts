// The cgroup side of one container's life, as the run path uses it:
//   prepare()  before the setup worker starts: the path is known and recorded in state;
//   create()   mkdir, controllers delegated, no limits yet (the v1 setup thread joins
//              it before unsharing its cgroup namespace, so the namespace's root is
//              the container's cgroup);
//   attach()   after launch() found the gated child, before the gate opens: limits,
//              then the child, so not one instruction of the program runs unlimited;
//   finish()   after the exit: read OOM kills, kill what is left, remove the cgroup.
import { TsrunError } from '../errors.js';
import type { Kernel } from '../linux/kernel.js';
import { tracer } from '../trace/tracer.js';
import type { Spec } from '../spec/types.js';
import { detectCgroups } from './detect.js';
import { cgroupManager, defaultCgroupsPath } from './manager.js';
import type { CgroupManager, Resources } from './types.js';

export const OOM_MESSAGE = 'the container was killed because it exceeded its memory limit';

/**
 * What the last foreground run learnt that the CLI reports (only the CLI prints).
 * One container per tsrun process runs in the foreground, so one record suffices.
 */
export const runOutcome = { oomKilled: false };

export class ContainerCgroup {
  readonly path: string;
  private m: CgroupManager | null = null;
  private created = false;

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
      if (this.spec.linux?.resources && Object.keys(this.spec.linux.resources).length) {
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
    return this.m?.threadFiles() ?? [];
  }

  attach(pid: number): void {
    if (!this.m) return;
    const res = (this.spec.linux?.resources ?? {}) as Resources;
    this.m.apply(res);
    this.m.addProcess(pid);
    tracer.step('step', 'cgroup-attach', `pid ${pid}`, 'limits written and the gated process moved in, before it execs');
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
    if (!this.m || !this.created) return;
    try {
      this.m.kill();
    } finally {
      this.m.destroy();
      this.created = false;
    }
  }
}

// The cgroup v1 manager: the same relative path in each controller's own hierarchy.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Kernel } from '../../linux/kernel.js';
import { killPids, makeCtl, procsRecursive, removeTree, waitUntil } from '../ctl.js';
import type { CgroupStats, Ctl, Resources } from '../types.js';
import { applyBlkio, blkioStats } from './blkio.js';
import { applyCpu, cpuUsageNs } from './cpu.js';
import { applyCpuset, inheritCpuset } from './cpuset.js';
import { freeze, thaw } from './freezer.js';
import { applyMemory, memoryOomKills, memoryStats } from './memory.js';
import { applyPids, pidsStats } from './pids.js';

export class V1Group {
  /** v1 controller name -> the container's directory in that controller's hierarchy */
  private readonly dirOf = new Map<string, string>();
  private readonly made = new Set<string>();

  /** `mounts`: v1 controller name -> hierarchy mount point, for the controllers tsrun uses. */
  constructor(
    private readonly k: Kernel,
    mounts: Record<string, string>,
    readonly rel: string,
  ) {
    for (const [name, mount] of Object.entries(mounts)) this.dirOf.set(name, join(mount, rel));
  }

  /** One directory per hierarchy (cpu and cpuacct may share one). */
  dirs(): string[] {
    return [...new Set(this.dirOf.values())];
  }

  private ctl(name: string): Ctl | null {
    const d = this.dirOf.get(name);
    return d ? makeCtl(this.k, d) : null;
  }

  create(): void {
    try {
      for (const [name, leaf] of this.dirOf) {
        const mount = leaf.slice(0, leaf.length - this.rel.length - 1);
        let dir = mount;
        for (const part of this.rel.split('/')) {
          dir = join(dir, part);
          if (!existsSync(dir)) {
            mkdirSync(dir);
            if (dir === leaf) this.made.add(leaf);
          }
          if (name === 'cpuset') inheritCpuset(makeCtl(this.k, dir), dir);
        }
      }
    } catch (e) {
      for (const d of this.made) removeTree(d);
      throw e;
    }
  }

  /** Each hierarchy's `tasks`: writing a tid there moves that one thread (v1 only). */
  threadFiles(): string[] {
    return this.dirs().map((d) => join(d, 'tasks'));
  }

  apply(res: Resources): void {
    const run = (name: string, f: (c: Ctl) => void): void => {
      const c = this.ctl(name);
      if (c) f(c);
    };
    run('memory', (c) => applyMemory(c, res.memory));
    run('cpu', (c) => applyCpu(c, res.cpu));
    run('cpuset', (c) => applyCpuset(c, res.cpu));
    run('pids', (c) => applyPids(c, res.pids));
    run('blkio', (c) => applyBlkio(c, res.blockIO));
  }

  addProcess(pid: number): void {
    for (const d of this.dirs()) makeCtl(this.k, d).write('cgroup.procs', String(pid), { flag: '(cgroup setup)', field: 'cgroup.procs', value: String(pid) });
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const d of this.dirs()) for (const p of procsRecursive(d)) all.add(p);
    return [...all];
  }

  stats(): Partial<CgroupStats> {
    const out: Partial<CgroupStats> = {};
    const acct = this.ctl('cpuacct');
    if (acct) out.cpuUsageNs = cpuUsageNs(acct);
    const mem = this.ctl('memory');
    if (mem) {
      const m = memoryStats(mem);
      Object.assign(out, { memoryUsage: m.usage, memoryLimit: m.limit, memoryInactiveFile: m.inactiveFile, oomKills: m.oomKills });
    }
    const pids = this.ctl('pids');
    if (pids) {
      const p = pidsStats(pids);
      Object.assign(out, { pidsCurrent: p.current, pidsLimit: p.limit });
    }
    const blk = this.ctl('blkio');
    if (blk) {
      const b = blkioStats(blk);
      Object.assign(out, { blkioRead: b.read, blkioWrite: b.write });
    }
    return out;
  }

  oomKills(): number {
    const mem = this.ctl('memory');
    return mem ? memoryOomKills(mem) : 0;
  }

  /**
   * v1 has no cgroup.kill: freeze the cgroup so nothing in it can fork, SIGKILL every
   * pid, then thaw so the signals are delivered. Without a freezer, repeat until empty.
   */
  kill(): void {
    const why = 'the container is over: kill what is left in its cgroup';
    const fr = this.ctl('freezer');
    const live = this.pids().filter((p) => p !== process.pid);
    if (live.length === 0) return;
    // tsrun's own setup thread may still sit in the cgroup; freezing would freeze tsrun.
    const self = this.pids().includes(process.pid);
    if (fr && existsSync(fr.dir) && !self) {
      const frozen = freeze(fr);
      try {
        killPids(this.k, this.pids(), why);
      } finally {
        thaw(fr);
      }
      if (!frozen) killPids(this.k, this.pids(), why);
    }
    waitUntil(() => {
      const left = this.pids().filter((p) => p !== process.pid);
      killPids(this.k, left, why);
      return left.length === 0;
    }, 3000);
  }

  destroy(): void {
    for (const d of this.dirs()) removeTree(d);
  }

  exists(): boolean {
    return this.dirs().some((d) => existsSync(d));
  }
}

// The cgroup v2 manager: one directory in the unified hierarchy.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TsrunError } from '../../errors.js';
import type { Kernel } from '../../linux/kernel.js';
import { killPids, makeCtl, procsRecursive, refused, removeTree, waitUntil } from '../ctl.js';
import type { CgroupStats, Ctl, Resources } from '../types.js';
import { applyCpu, cpuUsageNs } from './cpu.js';
import { applyCpuset } from './cpuset.js';
import { applyIo, ioStats } from './io.js';
import { applyMemory, memoryOomKills, memoryStats } from './memory.js';
import { applyPids, pidsStats } from './pids.js';

export class V2Group {
  readonly dir: string;
  private readonly c: Ctl;
  private made = false;

  /** `controllers`: the v2 controller names tsrun uses here (cpu, memory, ...). */
  constructor(
    private readonly k: Kernel,
    readonly mount: string,
    readonly rel: string,
    readonly controllers: string[],
  ) {
    this.dir = join(mount, rel);
    this.c = makeCtl(k, this.dir);
  }

  /**
   * Creates the cgroup path level by level, enabling the controllers in each parent's
   * cgroup.subtree_control first: a controller is usable in a cgroup only when every
   * ancestor delegates it. The leaf delegates nothing, so its processes break no rule.
   * The no-internal-processes rule (cgroups(7)): a non-root cgroup with processes of
   * its own cannot delegate controllers, and the kernel says EBUSY.
   */
  create(): void {
    const parts = this.rel.split('/');
    let dir = this.mount;
    try {
      for (const part of parts) {
        this.enableIn(dir);
        dir = join(dir, part);
        if (!existsSync(dir)) {
          mkdirSync(dir);
          if (dir === this.dir) this.made = true;
        }
      }
    } catch (e) {
      if (this.made) removeTree(this.dir);
      throw e;
    }
  }

  private enableIn(dir: string): void {
    const c = makeCtl(this.k, dir);
    const available = (c.tryRead('cgroup.controllers') ?? '').split(/\s+/);
    const enabled = (c.tryRead('cgroup.subtree_control') ?? '').split(/\s+/);
    const missing = this.controllers.filter((n) => available.includes(n) && !enabled.includes(n));
    if (missing.length === 0) return; // never write to a parent that already delegates them
    const value = missing.map((n) => `+${n}`).join(' ');
    try {
      this.k.writeFile(join(dir, 'cgroup.subtree_control'), value, 'delegate the controllers to the child cgroup (a v2 controller works only where every ancestor enables it)');
    } catch (e) {
      if ((e as { code?: string }).code === 'EBUSY') {
        throw new TsrunError('CGROUP', `cannot enable ${missing.join(', ')} in ${dir}: it holds processes of its own (cgroup v2's no-internal-processes rule)`, {
          cause: e,
          hint: 'put the container under a parent cgroup without processes (linux.cgroupsPath or TSRUN_CGROUP_PARENT)',
        });
      }
      throw refused(join(dir, 'cgroup.subtree_control'), value, { flag: '(cgroup setup)', field: 'cgroup.subtree_control', value }, e);
    }
  }

  apply(res: Resources, use: (controller: string) => boolean): void {
    if (use('memory')) applyMemory(this.c, res.memory);
    if (use('cpu')) applyCpu(this.c, res.cpu);
    if (use('cpuset')) applyCpuset(this.c, res.cpu);
    if (use('pids')) applyPids(this.c, res.pids);
    if (use('io')) applyIo(this.c, res.blockIO);
  }

  addProcess(pid: number): void {
    this.c.write('cgroup.procs', String(pid), { flag: '(cgroup setup)', field: 'cgroup.procs', value: String(pid) });
  }

  pids(): number[] {
    return procsRecursive(this.dir);
  }

  stats(use: (controller: string) => boolean): Partial<CgroupStats> {
    const out: Partial<CgroupStats> = { cpuUsageNs: cpuUsageNs(this.c) };
    if (use('memory')) {
      const m = memoryStats(this.c);
      Object.assign(out, { memoryUsage: m.usage, memoryLimit: m.limit, memoryInactiveFile: m.inactiveFile, oomKills: m.oomKills });
    }
    if (use('pids')) {
      const p = pidsStats(this.c);
      Object.assign(out, { pidsCurrent: p.current, pidsLimit: p.limit });
    }
    if (use('io')) {
      const io = ioStats(this.c);
      Object.assign(out, { blkioRead: io.read, blkioWrite: io.write });
    }
    return out;
  }

  oomKills(): number {
    return memoryOomKills(this.c);
  }

  /**
   * cgroup.kill (Linux 5.14+) SIGKILLs every process in the subtree at once, so none
   * can fork away. Older kernels: freeze, kill each, thaw.
   */
  kill(): void {
    if (!existsSync(this.dir)) return;
    const populated = (): boolean => /populated 1/.test(this.c.tryRead('cgroup.events') ?? '');
    if (this.c.exists('cgroup.kill')) {
      this.c.write('cgroup.kill', '1', { flag: '(cleanup)', field: 'cgroup.kill', value: '1' });
    } else {
      this.c.write('cgroup.freeze', '1', { flag: '(cleanup)', field: 'cgroup.freeze', value: '1' });
      killPids(this.k, this.pids(), 'the container is over: kill what is left in its cgroup');
      this.c.write('cgroup.freeze', '0', { flag: '(cleanup)', field: 'cgroup.freeze', value: '0' });
    }
    waitUntil(() => !populated(), 2000);
  }

  destroy(): void {
    if (this.made || existsSync(this.dir)) removeTree(this.dir);
  }

  exists(): boolean {
    return existsSync(this.dir);
  }
}

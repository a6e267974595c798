// One interface over the v1 and v2 managers. On a hybrid host the container gets a v2
// cgroup only when some controller it needs lives on v2; the rest are v1 cgroups at the
// same relative path.
import { readdirSync, statSync } from 'node:fs';
import type { Kernel } from '../linux/kernel.js';
import { makeCtl, relativeCgroupPath } from './ctl.js';
import { type CgroupLayout, detectCgroups, V1_NAMES, V2_NAME } from './detect.js';
import type { CgroupManager, CgroupStats, Controller, Resources } from './types.js';
import { CONTROLLERS } from './types.js';
import { V1Group } from './v1/manager.js';
import { V2Group } from './v2/manager.js';
import { applyDevicesV1, applyDevicesV2 } from './devices/apply.js';
import { normalizeDeviceRules, withRuntimeDevices } from './devices/rules.js';
import { tracer } from '../trace/tracer.js';
import { join } from 'node:path';

/** The default parent: TSRUN_CGROUP_PARENT or "tsrun", so every container is <parent>/<id>. */
export function defaultCgroupsPath(id: string, env: NodeJS.ProcessEnv = process.env): string {
  const parent = (env.TSRUN_CGROUP_PARENT ?? 'tsrun').replace(/^\/+|\/+$/g, '');
  return parent ? `${parent}/${id}` : id;
}

class Manager implements CgroupManager {
  readonly version: 'v1' | 'v2' | 'hybrid';
  private readonly v2: V2Group | null;
  private readonly v1: V1Group | null;
  private readonly onV2: (controller: string) => boolean;
  /** devices (issue 6): where the device rules are enforced, if anywhere */
  private readonly devices: { on: 'v1' | 'v2'; dir: string } | null;

  constructor(
    private readonly k: Kernel,
    layout: CgroupLayout,
    cgroupsPath: string,
  ) {
    const rel = relativeCgroupPath(cgroupsPath);
    const v2Controllers = CONTROLLERS.filter((c) => layout.choice[c] === 'v2' && V2_NAME[c]).map((c) => V2_NAME[c]!);
    const useV2 = layout.v2 !== null && (layout.mode === 'v2' || v2Controllers.length > 0);
    this.v2 = useV2 ? new V2Group(k, layout.v2!.mount, rel, v2Controllers) : null;
    const v1Mounts: Record<string, string> = {};
    for (const c of CONTROLLERS) {
      if (layout.choice[c] !== 'v1') continue;
      for (const n of V1_NAMES[c]) v1Mounts[n] = layout.v1[n]!;
    }
    // devices (issue 6): a v1 devices hierarchy when the host mounts one (created,
    // joined by the setup thread and removed with the rest); otherwise, on cgroup v2,
    // an eBPF filter on the container's v2 cgroup.
    const devicesV1 = layout.mode !== 'v2' && layout.v1.devices ? layout.v1.devices : null;
    if (devicesV1) v1Mounts.devices = devicesV1;
    this.v1 = Object.keys(v1Mounts).length > 0 ? new V1Group(k, v1Mounts, rel) : null;
    this.version = this.v1 && this.v2 ? 'hybrid' : this.v2 ? 'v2' : 'v1';
    this.onV2 = (name) => v2Controllers.includes(name);
    this.devices = devicesV1 ? { on: 'v1', dir: join(devicesV1, rel) } : this.v2 ? { on: 'v2', dir: this.v2.dir } : null;
  }

  dirs(): string[] {
    return [...(this.v2 ? [this.v2.dir] : []), ...(this.v1?.dirs() ?? [])];
  }

  create(): void {
    this.v2?.create();
    try {
      this.v1?.create();
    } catch (e) {
      this.v2?.destroy();
      throw e;
    }
  }

  apply(res: Resources): void {
    this.v2?.apply(res, this.onV2);
    this.v1?.apply(res);
    // devices (issue 6): only when the spec has a list; `update` without one keeps the rules.
    if (res.devices !== undefined) {
      const rules = withRuntimeDevices(normalizeDeviceRules(res.devices));
      if (this.devices?.on === 'v1') applyDevicesV1(makeCtl(this.k, this.devices.dir), rules);
      else if (this.devices?.on === 'v2') applyDevicesV2(this.k, this.devices.dir, rules);
      else tracer.step('step', 'devices', 'not enforced', 'this host has neither a v1 devices hierarchy nor a cgroup v2 part for the container');
    }
  }

  addProcess(pid: number): void {
    this.v2?.addProcess(pid);
    this.v1?.addProcess(pid);
  }

  threadFiles(): string[] {
    // A v2 domain cgroup holds whole processes: one thread cannot be moved alone.
    return this.v2 ? [] : this.v1?.threadFiles() ?? [];
  }

  pids(): number[] {
    return [...new Set([...(this.v2?.pids() ?? []), ...(this.v1?.pids() ?? [])])];
  }

  stats(): CgroupStats {
    const base: CgroupStats = {
      cpuUsageNs: 0, memoryUsage: 0, memoryInactiveFile: 0, memoryLimit: null, pidsCurrent: 0, pidsLimit: null, blkioRead: 0, blkioWrite: 0, oomKills: 0,
    };
    // v1 first, so a controller that lives on v2 overrides the empty v1 defaults.
    return { ...base, ...(this.v1?.stats() ?? {}), ...(this.v2?.stats(this.onV2) ?? {}) };
  }

  oomKills(): number {
    return (this.onV2('memory') ? this.v2?.oomKills() : this.v1?.oomKills()) ?? 0;
  }

  kill(): void {
    this.v2?.kill();
    this.v1?.kill();
  }

  destroy(): void {
    let first: unknown;
    for (const g of [this.v2, this.v1]) {
      try {
        g?.destroy();
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }

  exists(): boolean {
    return (this.v2?.exists() ?? false) || (this.v1?.exists() ?? false);
  }
}

export function cgroupManager(k: Kernel, cgroupsPath: string, layout: CgroupLayout = detectCgroups()): CgroupManager {
  return new Manager(k, layout, cgroupsPath);
}

/** Which logical controllers this layout can limit (for `tsrun info` and error hints). */
export function availableControllers(layout: CgroupLayout): Array<{ controller: Controller; version: 'v1' | 'v2' | null }> {
  return CONTROLLERS.map((c) => ({ controller: c, version: layout.choice[c] }));
}

/** Kills and removes a cgroup left by a tsrun that died (kill -9); quiet when already gone. */
export function removeStaleCgroup(k: Kernel, cgroupsPath: string, layout: CgroupLayout = detectCgroups()): void {
  const m = cgroupManager(k, cgroupsPath, layout);
  if (!m.exists()) return;
  m.kill();
  m.destroy();
}

/**
 * Removes empty container cgroups under the default parent that are older than
 * `minAgeMs`. State-driven cleanup misses a cgroup whose tsrun was killed and whose
 * state dir went too (a deleted TSRUN_ROOT). A live container's cgroup is never empty
 * for long: from create() on, the v1 setup thread or the gated child is inside, and
 * tsrun removes it as soon as the container ends. Non-empty ones are never touched.
 */
export function sweepEmptyCgroups(k: Kernel, minAgeMs = 60_000, layout: CgroupLayout = detectCgroups(), parent = defaultCgroupsPath('x').slice(0, -2)): string[] {
  if (layout.mode === 'none' || !parent) return [];
  const probe = cgroupManager(k, `${parent}/probe`, layout);
  const names = new Set<string>();
  for (const d of probe.dirs()) {
    const p = d.slice(0, -'/probe'.length);
    try {
      for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
    } catch {
      /* no parent in this hierarchy */
    }
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = cgroupManager(k, `${parent}/${name}`, layout);
    const ages = m.dirs().map((d) => {
      try {
        // ctimeMs carries sub-millisecond precision and Date.now() is truncated, so a
        // directory made this millisecond reads as slightly in the future: clamp at 0.
        return Math.max(0, Date.now() - statSync(d).ctimeMs);
      } catch {
        return Infinity;
      }
    });
    if (Math.min(...ages) < minAgeMs || m.pids().length > 0) continue;
    try {
      m.destroy();
      removed.push(`${parent}/${name}`);
    } catch {
      /* busy after all: leave it */
    }
  }
  return removed;
}

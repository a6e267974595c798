// The shared tools of the detached-lifecycle e2e files: a tsrun bound to the test's own
// root and cgroup parent, run -d / inspect shortcuts, the monitor's pid, and the
// afterEach that removes what a failed test left and checks that no cgroup survived.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { expectExit, type Sandbox } from './sandbox.js';
import { alive, until } from './wait.js';
import { newCgroupParent, removeCgroupParent } from './cgroups.js';

export function lifecycleKit(sb: Sandbox, tag: string) {
  const parent = newCgroupParent(`e2e-${tag}`);
  const env: { [k: string]: string } = { TSRUN_CGROUP_PARENT: parent };
  const ts = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) => sb.tsrun(args, { env, timeoutMs: 60_000, ...opts });
  const runD = async (flags: string[], cmd: string[]): Promise<string> => {
    const r = await ts(['run', '-d', '--rootfs', sb.rootfs(), ...flags, '--', ...cmd]);
    expectExit(r, 0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    return id;
  };
  const inspect = async (ref: string, tpl: string): Promise<string> => {
    const r = await ts(['inspect', '-f', tpl, ref]);
    expectExit(r, 0);
    return r.stdout.trim();
  };
  const monitorPid = (): number | null => {
    try {
      return Number(readFileSync(join(sb.root, 'run', 'monitor.pid'), 'utf8').split(' ')[0]);
    } catch {
      return null;
    }
  };
  const waitFor = (what: string, f: () => Promise<boolean> | boolean, ms = 20_000): Promise<unknown> => until(f, what, ms, 100);
  /** For afterEach: remove what a failed test left (so the sandbox's leak check reports it once), then no cgroup may be left. */
  const cleanup = async (): Promise<void> => {
    const left = (await ts(['ps', '-aq'])).stdout.trim().split('\n').filter(Boolean);
    if (left.length) await ts(['rm', '-f', ...left]);
    await waitFor('the monitor to exit', () => {
      const p = monitorPid();
      return p === null || !alive(p);
    }, 10_000).catch(() => {});
    expect(removeCgroupParent(parent), 'cgroups left behind').toEqual([]);
  };
  return { parent, env, ts, runD, inspect, monitorPid, waitFor, cleanup };
}

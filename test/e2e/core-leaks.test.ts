// The leak checks themselves: every other e2e test relies on them to prove that
// nothing outlives it, so they must be able to fail. Plus what happens to a container
// whose tsrun is killed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { LeakChecker, cgroupsNamed, containerPids, networkEndpointsOf } from '../helpers/leaks.js';
import { TempDirs, mountsUnder, removeTree } from '../helpers/tempdirs.js';
import { waitForOutput } from '../helpers/tsrun.js';

describe('leak checker', () => {
  const sb = useSandbox();

  it('sees a running container: the tsrun process, the container process and its state', async () => {
    const leaks = new LeakChecker().watchPath(sb.dir).watchStateRoot(sb.root);
    const before = leaks.snapshot();
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 5 & wait $!; done']);
    await waitForOutput(sub, /ready/);
    const found = await leaks.findLeaks(before, 0);
    const kinds = found.map((l) => l.kind).sort();
    expect(kinds).toContain('process');
    expect(kinds).toContain('state');
    // The container's PID 1 (NSpid ends in 1) is found through its mount namespace,
    // not its argv. (Its short-lived sleeps may come and go between the two scans.)
    const pid1 = containerPids(sb.rootfs()).find((p) => /\t1$/m.test(readFileSync(`/proc/${p}/status`, 'utf8').match(/^NSpid:.*$/m)?.[0] ?? ''));
    expect(pid1).toBeDefined();
    expect(found.find((l) => l.pid === pid1)?.what).toMatch(/its mount namespace holds/);
    expect(found.some((l) => l.pid === sub.pid)).toBe(true);
    // The container's id was caught as its state dir appeared; any cgroup named after
    // it is reported while it runs.
    expect(leaks.containerIds.size).toBe(1);
    const state = found.find((l) => l.kind === 'state')!.what;
    expect(state.endsWith([...leaks.containerIds][0]!)).toBe(true);
    const cgroups = cgroupsNamed(leaks.containerIds);
    expect(found.filter((l) => l.kind === 'cgroup').map((l) => l.what)).toEqual(cgroups);
    // Likewise its network endpoint and host-side veth (default bridge network).
    const endpoints = networkEndpointsOf(leaks.containerIds);
    expect(endpoints).toHaveLength(1);
    expect(endpoints[0]).toMatch(/veth \S+ still on the host$/);
    expect(found.filter((l) => l.kind === 'network').map((l) => l.what)).toEqual(endpoints);
    sub.kill('SIGTERM');
    expect((await sub).exitCode).toBe(0);
    expect(await leaks.findLeaks(before)).toEqual([]);
    leaks.close();
  });

  it('sees a host mount under the test dir, and a file left in a watched-empty dir', async () => {
    const leaks = new LeakChecker().watchPath(sb.dir).watchEmptyDir(sb.tmp);
    const before = leaks.snapshot();
    const m = sb.mkdir('mnt');
    execFileSync('mount', ['-t', 'tmpfs', 'e2e-leak-probe', m]);
    writeFileSync(join(sb.tmp, 'left-behind'), '');
    try {
      const found = await leaks.findLeaks(before, 0);
      expect(found.filter((l) => l.kind === 'mount').map((l) => l.what)).toEqual([`e2e-leak-probe on ${m} (root /)`]);
      expect(found.filter((l) => l.kind === 'file').map((l) => l.what)).toEqual([join(sb.tmp, 'left-behind')]);
    } finally {
      execFileSync('umount', [m]);
      execFileSync('rm', ['-f', join(sb.tmp, 'left-behind')]);
    }
  });

  it('removeTree detaches a bind mount before deleting, so the bind source survives', () => {
    const other = new TempDirs();
    const src = other.make('bind-src');
    try {
      writeFileSync(join(src, 'precious'), 'keep me\n');
      const tree = sb.mkdir('tree');
      mkdirSync(join(tree, 'inner'));
      execFileSync('mount', ['--bind', src, join(tree, 'inner')]);
      expect(mountsUnder(tree)).toEqual([join(tree, 'inner')]);
      removeTree(tree);
      expect(existsSync(tree)).toBe(false);
      expect(readFileSync(join(src, 'precious'), 'utf8')).toBe('keep me\n');
    } finally {
      expect(other.removeAll()).toEqual([]);
    }
  });
});

describe('core: a killed tsrun', () => {
  const sb = useSandbox();

  it('kill -9 of tsrun: the next tsrun on the same root removes the orphan container and its state', async () => {
    const sub = sb.spawn(['run', '--rootfs', sb.rootfs(), '--', 'sh', '-c', 'echo ready; while :; do sleep 5 & wait $!; done']);
    await waitForOutput(sub, /ready/);
    const orphans = containerPids(sb.rootfs());
    expect(orphans.length).toBeGreaterThan(0);
    const exited = new Promise((res) => sub.once('exit', res));
    sub.kill('SIGKILL');
    // Not `await sub`: that also waits for stdout to close, and the orphan holds it open.
    await exited;
    // Whatever the container did on its own, a later tsrun must clean up after the dead one.
    const r = await sb.run(['true']);
    expectExit(r, 0);
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && orphans.some((p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '))) {
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(containerPids(sb.rootfs())).toEqual([]);
    // With the orphan gone, the pipe closes and the killed tsrun's result settles.
    expect((await sub).signal).toBe('SIGKILL');
    // The afterEach leak check then proves the state dir is gone too.
  });
});

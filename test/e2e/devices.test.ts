// Device access control (issue 6): a container may
// create any device node (CAP_MKNOD, as in Docker) but open only its default devices,
// what --device adds, and everything under --privileged. The block device used is a
// loop device on a file in the test's own dir, so reading it is harmless and its
// contents are known; it is detached after each test. Nodes are made in the container's
// /dev (its own tmpfs): a rootfs on a nodev mount, like the cgroup2 VM's /tmp, would make
// every open fail with EACCES whatever the device cgroup says.
//
// On this hybrid host the rules live in the v1 devices cgroup; on a pure cgroup v2 host
// (the VM of ../shared/tools/cgroup2-vm) in an eBPF program, and the same tests apply:
//   run-in-vm.sh --env TSRUN_E2E_SLOW=8 -- npx vitest run --project e2e test/e2e/devices.test.ts
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { waitForOutput } from '../helpers/tsrun.js';
import { cgroupsNamed } from '../helpers/leaks.js';
import { DEFAULT_DEVICE_RULES, v1Line } from '../../src/cgroups/devices/rules.js';

const devOf = (p: string): { major: number; minor: number } => {
  const rdev = statSync(p).rdev;
  return { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
};

const SLOW = Number(process.env.TSRUN_E2E_SLOW ?? 1);
// util-linux's, by path: busybox's losetup (first in the cgroup2 VM's PATH) has no --show
const LOSETUP = ['/usr/sbin/losetup', '/sbin/losetup'].find((p) => existsSync(p)) ?? 'losetup';
const V1_DEVICES = existsSync('/sys/fs/cgroup/devices/devices.list');

describe(`device access control (${V1_DEVICES ? 'v1 devices cgroup' : 'cgroup v2 eBPF filter'})`, () => {
  const sb = useSandbox();
  let loops: string[] = [];

  afterEach(() => {
    for (const l of loops) execFileSync(LOSETUP, ['-d', l]);
    loops = [];
  });

  /** A loop device over a file in the test's dir whose first byte is 'Q'. */
  function loopDevice(): { path: string; major: number; minor: number } {
    const file = join(sb.dir, 'disk.img');
    writeFileSync(file, Buffer.concat([Buffer.from('Q'), Buffer.alloc(4095)]));
    const path = execFileSync(LOSETUP, ['-f', '--show', '-r', file], { encoding: 'utf8' }).trim();
    loops.push(path);
    return { path, ...devOf(path) };
  }

  it('default container: mknod of a block device works, opening it is EPERM; the default devices work', async () => {
    const loop = loopDevice();
    const r = await sb.run(['sh', '-c', [
      `mknod /dev/disk b ${loop.major} ${loop.minor} && echo made`,
      'head -c1 /dev/disk; echo "open=$?"',
      'mknod /dev/sda b 8 0 && head -c1 /dev/sda; echo "sda=$?"',
      'echo x > /dev/null && echo null-ok',
      'head -c3 /dev/zero | wc -c; head -c2 /dev/urandom | wc -c; head -c2 /dev/random | wc -c',
      'echo x 2>/dev/null > /dev/full || echo full-refused-write',
      // /dev/tty is allowed: without a controlling terminal the driver answers ENXIO, not the cgroup's EPERM
      '(: < /dev/tty)',
      'ls /dev/pts/ptmx >/dev/null && echo pts-ok',
    ].join('; ')]);
    expectExit(r, 0);
    expect(r.stdout).toBe('made\nopen=1\nsda=1\nnull-ok\n3\n2\n2\nfull-refused-write\npts-ok\n');
    // both opens were refused by the device cgroup, not by the driver (ENXIO) or a missing node (ENOENT)
    expect(r.stderr.match(/Operation not permitted/g)).toHaveLength(2);
    expect(r.stderr).toMatch(/\/dev\/tty: No such device or address/);
  });

  it('the cgroup refuses the open even with every capability and no seccomp; --privileged allows it', async () => {
    const loop = loopDevice();
    const cmd = ['sh', '-c', `rm -f /dev/disk; mknod /dev/disk b ${loop.major} ${loop.minor} && head -c1 /dev/disk`];
    const caps = await sb.run(cmd, ['--cap-add', 'ALL', '--security-opt', 'seccomp=unconfined']);
    expect(caps.exitCode).toBe(1);
    expect(caps.stderr).toMatch(/Operation not permitted/);
    const priv = await sb.run(cmd, ['--privileged']);
    expectExit(priv, 0);
    expect(priv.stdout).toBe('Q');
  });

  it('--device adds the host node and allows it; permissions narrow it; without the flag the same node is refused', async () => {
    const lc = '/dev/loop-control';
    if (!existsSync(lc)) return;
    const { major, minor } = devOf(lc);
    const added = await sb.run(['sh', '-c', `ls -l ${lc}; (: < ${lc}) && echo opened`], ['--device', lc]);
    expectExit(added, 0);
    expect(added.stdout).toMatch(new RegExp(`^crw-------\\s+1 root\\s+root\\s+${major},\\s+${minor} .*${lc}\\n`));
    expect(added.stdout).toMatch(/opened\n$/);

    const readOnly = await sb.run(['sh', '-c', '(: < /dev/lc) && echo read-ok; (: > /dev/lc) && echo write-ok; exit 0'], ['--device', `${lc}:/dev/lc:r`]);
    expectExit(readOnly, 0);
    expect(readOnly.stdout).toBe('read-ok\n');
    expect(readOnly.stderr).toMatch(/Operation not permitted/);

    const without = await sb.run(['sh', '-c', `test -e ${lc} && echo present; mknod /dev/lc2 c ${major} ${minor} && (: < /dev/lc2) && echo opened; exit 0`]);
    expectExit(without, 0);
    expect(without.stdout).toBe('');
    expect(without.stderr).toMatch(/Operation not permitted/);
  });

  it('--device refuses a path that is not a device, with exit 125', async () => {
    const r = await sb.run(['true'], ['--device', '/etc/hostname']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/--device \/etc\/hostname: .*not a character or block device/);
  });

  it.runIf(V1_DEVICES)('the container\'s devices cgroup holds the rules while it runs, and is removed after', async () => {
    // The container waits for a file the test creates, so it ends by itself (no signal
    // that could kill tsrun before its cleanup).
    const rootfs = sb.rootfs();
    const sub = sb.spawn(['run', '--rootfs', rootfs, '--', 'sh', '-c', 'cat /proc/self/cgroup; while [ ! -e /tmp/go ]; do sleep 0.05; done']);
    const text = await waitForOutput(sub, /devices:/, 15_000 * SLOW);
    // inside its cgroup namespace the container sees its own cgroup as the root
    expect(text).toMatch(/^\d+:devices:\/$/m);
    const [id] = readdirSync(join(sb.root, 'run', 'containers'));
    const dirs = cgroupsNamed([id!]).filter((d) => d.startsWith('/sys/fs/cgroup/devices/'));
    expect(dirs).toHaveLength(1);
    expect(readFileSync(join(dirs[0]!, 'devices.list'), 'utf8').trim().split('\n')).toEqual(DEFAULT_DEVICE_RULES.slice(1).map(v1Line));
    const procs = readFileSync(join(dirs[0]!, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
    expect(procs.length).toBeGreaterThan(0);
    writeFileSync(join(rootfs, 'tmp', 'go'), '');
    expectExit(await sub, 0);
    expect(existsSync(dirs[0]!)).toBe(false);
  });

  it.runIf(!V1_DEVICES)('cgroup v2: the rules are loaded as one eBPF program and attached to the container\'s cgroup', async () => {
    const r = await sb.tsrun(['--trace', 'run', '--rootfs', sb.rootfs(), '--', 'true']);
    expectExit(r, 0);
    expect(r.stderr).toMatch(/bpf\(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE, \d+ instructions\) = \d+/);
    expect(r.stderr).toMatch(/bpf\(BPF_PROG_ATTACH, target \d+, prog \d+, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI\) = 0/);
  });
});

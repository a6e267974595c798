// Core runtime, isolation: what a container can see of the host, checked from inside
// the container with busybox tools.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname as hostHostname, networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { parseMountinfo } from '../helpers/leaks.js';

describe('core: namespaces', () => {
  const sb = useSandbox();

  it('pid, mount, uts, ipc, network and cgroup namespaces are all new; the user namespace is the host\'s', async () => {
    const types = ['pid', 'mnt', 'uts', 'ipc', 'net', 'cgroup', 'user'];
    const r = await sb.run(['sh', '-c', `for n in ${types.join(' ')}; do echo $n $(readlink /proc/self/ns/$n); done`]);
    expectExit(r, 0);
    const inside = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    for (const t of types) {
      const host = readlinkSync(`/proc/self/ns/${t}`);
      if (t === 'user') expect(inside[t]).toBe(host);
      else expect(inside[t], `${t} namespace`).not.toBe(host);
    }
  });

  it('the cgroup namespace makes the container\'s own cgroups its root', async () => {
    const r = await sb.run(['cat', '/proc/self/cgroup']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/:\/$/);
  });
});

describe('core: PID namespace', () => {
  const sb = useSandbox();

  it('runs the command as PID 1 and shows only its own processes', async () => {
    // The glob is expanded by sh itself, which is then the only process alive: any
    // host process (or tsrun) visible in /proc would add an entry.
    const script = 'cat /proc/1/cmdline | tr "\\0" " "; echo; echo /proc/[0-9]*; echo pid=$$';
    const r = await sb.run(['sh', '-c', script]);
    expectExit(r, 0);
    const [cmdline, pids, self] = r.stdout.trim().split('\n');
    expect(cmdline?.trim()).toBe(`sh -c ${script}`);
    expect(pids).toBe('/proc/1');
    expect(self).toBe('pid=1');
  });

  it('the command itself is PID 1, with no shim in between', async () => {
    const r = await sb.run(['cat', '/proc/1/cmdline']);
    expectExit(r, 0);
    expect(r.stdout).toBe('cat\0/proc/1/cmdline\0');
  });

  it('sees its own children, numbered from 1', async () => {
    // Wait until the child has exec'd sleep, or ps may still see it as a forked sh.
    const r = await sb.run(['sh', '-c', 'sleep 30 & echo $!; while [ "$(cat /proc/$!/comm)" != sleep ]; do :; done; ps -o pid,comm; kill $!']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('2');
    expect(lines[1]).toMatch(/^\s*PID\s+COMMAND/);
    const rows = lines.slice(2).map((l) => l.trim().split(/\s+/));
    expect(rows.map((x) => x[1]).sort()).toEqual(['ps', 'sh', 'sleep']);
    expect(rows.find((x) => x[1] === 'sh')?.[0]).toBe('1');
  });
});

describe('core: UTS namespace', () => {
  const sb = useSandbox();

  it('has the hostname given with --hostname, and the host keeps its own', async () => {
    const before = hostHostname();
    const r = await sb.run(['sh', '-c', 'hostname; cat /proc/sys/kernel/hostname; echo $HOSTNAME'], ['--hostname', 'box-e2e']);
    expectExit(r, 0);
    expect(r.stdout).toBe('box-e2e\nbox-e2e\nbox-e2e\n');
    expect(hostHostname()).toBe(before);
  });

  it('defaults the hostname to a 12-hex container id, not the host name', async () => {
    const r = await sb.run(['hostname']);
    expectExit(r, 0);
    expect(r.stdout.trim()).toMatch(/^[0-9a-f]{12}$/);
    expect(r.stdout.trim()).not.toBe(hostHostname());
  });

  it('may change its hostname (with CAP_SYS_ADMIN) without touching the host', async () => {
    const before = hostHostname();
    // docker's default set has no CAP_SYS_ADMIN, which sethostname(2) needs.
    const denied = await sb.run(['hostname', 'changed-inside']);
    expectExit(denied, 1);
    expect(denied.stderr).toContain('Operation not permitted');
    const r = await sb.run(['sh', '-c', 'hostname changed-inside && hostname'], ['--cap-add', 'SYS_ADMIN']);
    expectExit(r, 0);
    expect(r.stdout.trim()).toBe('changed-inside');
    expect(hostHostname()).toBe(before);
  });
});

describe('core: mount namespace', () => {
  const sb = useSandbox();

  it('shows no host mount: only /, /proc, /dev and /sys trees, docker\'s /etc files, and no host mount point', async () => {
    const r = await sb.run(['cat', '/proc/self/mountinfo']);
    expectExit(r, 0);
    const inside = parseMountinfo(r.stdout);
    expect(inside.length).toBeGreaterThan(3);
    const points = inside.map((m) => m.mountPoint);
    const etcFiles = ['/etc/resolv.conf', '/etc/hosts', '/etc/hostname'];
    for (const p of points) {
      if (etcFiles.includes(p)) continue;
      expect(p, `unexpected mount ${p} in the container`).toMatch(/^\/$|^\/(proc|dev|sys)(\/|$)/);
    }
    // Like docker, tsrun may bind its own generated /etc/resolv.conf, hosts and hostname;
    // they must be per-container files under TSRUN_ROOT, never the host's /etc files.
    for (const m of inside.filter((x) => etcFiles.includes(x.mountPoint))) {
      expect(m.root.startsWith(sb.root + '/'), `${m.mountPoint} comes from ${m.root}`).toBe(true);
    }
    // Mount points the host has outside those trees (/boot, /run, /work...) must not
    // appear, and the container's / must be our rootfs, not the host's.
    const hostPoints = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
      .map((m) => m.mountPoint)
      .filter((p) => p !== '/' && !/^\/(proc|dev|sys)(\/|$)/.test(p));
    for (const p of hostPoints) expect(points).not.toContain(p);
    const root = inside.find((m) => m.mountPoint === '/');
    expect(root?.root).toBe(sb.rootfs());
  });

  it('has a fresh /proc, a read-only /sys and a /dev with only the standard devices', async () => {
    const r = await sb.run(['sh', '-c', [
      'cut -d" " -f5,6,9 /proc/self/mountinfo',
      'echo DEV $(ls /dev)',
      'for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done',
      'echo x > /sys/kernel/uevent_helper 2>/dev/null && echo sys-writable || echo sys-ro',
    ].join('; ')]);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain('/proc rw,nosuid,nodev,noexec,relatime proc');
    expect(lines.find((l) => l.startsWith('/sys '))).toMatch(/^\/sys ro,.* sysfs$/);
    const devLine = lines.findIndex((l) => l.startsWith('DEV '));
    const devs = lines[devLine]!.split(' ').slice(1);
    for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'ptmx', 'pts', 'shm', 'mqueue', 'fd', 'stdin', 'stdout', 'stderr']) expect(devs).toContain(d);
    // The host's disks and consoles must not be there.
    for (const d of devs) expect(['vda', 'sda', 'console', 'mem', 'kmsg', 'kvm']).not.toContain(d);
    expect(lines.slice(devLine + 1)).toEqual(['pts/ptmx', '/proc/self/fd', '/proc/self/fd/0', '/proc/self/fd/1', '/proc/self/fd/2', 'sys-ro']);
  });
});

describe('core: network namespace', () => {
  const sb = useSandbox();

  // Interface names the host has, except lo (every namespace has its own lo).
  const hostLinks = (): string[] => Object.keys(networkInterfaces()).filter((n) => n !== 'lo');
  const listIfs = ['sh', '-c', 'echo $(ls /sys/class/net); tail -n +3 /proc/net/dev | cut -d: -f1'];

  it('--network none: only lo', async () => {
    const r = await sb.run(listIfs, ['--network', 'none']);
    expectExit(r, 0);
    const [sys, ...dev] = r.stdout.trim().split('\n');
    expect(sys).toBe('lo');
    expect(dev.map((d) => d.trim())).toEqual(['lo']);
  });

  it('by default too, no host network interface is visible (the container\'s own may be)', async () => {
    const host = hostLinks();
    const r = await sb.run(listIfs);
    expectExit(r, 0);
    const inside = r.stdout.trim().split('\n')[0]!.split(' ');
    expect(inside).toContain('lo');
    // A veth peer inside is the container's own; the host's names (eth0 of the VM,
    // docker0, the bridge, other containers' veths) must not show. A host link whose
    // name the container reuses (eth0) is told apart by its MAC address.
    for (const h of host) {
      if (!inside.includes(h)) continue;
      const r2 = await sb.run(['cat', `/sys/class/net/${h}/address`]);
      expect(r2.stdout.trim(), `${h} in the container has the host's MAC`).not.toBe(readFileSync(`/sys/class/net/${h}/address`, 'utf8').trim());
    }
  });

  it('brings lo up (runtime-spec: a fresh network namespace has loopback up)', async () => {
    // IFF_UP is bit 0 of /sys/class/net/lo/flags; a bare new netns has lo down (0x8).
    const r = await sb.run(['sh', '-c', 'cat /sys/class/net/lo/flags; ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 && echo ping-ok || echo ping-failed'], ['--network', 'none']);
    expectExit(r, 0);
    const [flags, ping] = r.stdout.trim().split('\n');
    expect(Number(flags) & 1, `lo flags ${flags}`).toBe(1);
    expect(ping).toBe('ping-ok');
  });
});

describe('core: file descriptors', () => {
  const sb = useSandbox();
  // `ls /proc/$$/fd` lists the shell's descriptors, not those ls opens for itself; the
  // trailing `true` stops sh from exec'ing ls in its place. No pipeline: while sh sets
  // one up, it briefly holds the pipe's fds itself.
  const listFds = ['sh', '-c', 'ls /proc/$$/fd; true'];
  const fds = (out: string): string => out.trim().split('\n').join(' ');

  it('the command starts with exactly fds 0, 1 and 2', async () => {
    const r = await sb.run(listFds);
    expectExit(r, 0);
    expect(fds(r.stdout)).toBe('0 1 2');
  });

  it('fds that tsrun inherits beyond 0-2 do not reach the container (CVE-2024-21626 class)', async () => {
    const r = await sb.run(listFds, [], { extraFds: 3 });
    expectExit(r, 0);
    expect(fds(r.stdout)).toBe('0 1 2');
  });

  it('no fd, cwd or root of the container points at a host path', async () => {
    const r = await sb.run(['sh', '-c', 'for l in cwd root fd/0 fd/1 fd/2; do readlink /proc/$$/$l; done'], ['-w', '/tmp']);
    expectExit(r, 0);
    const [cwd, root, fd0, fd1, fd2] = r.stdout.trim().split('\n');
    expect([cwd, root, fd0]).toEqual(['/tmp', '/', '/dev/null']);
    // stdout and stderr are the pipes tsrun was given (libuv makes them socketpairs): no path.
    expect(fd1).toMatch(/^(pipe|socket):\[\d+\]$/);
    expect(fd2).toMatch(/^(pipe|socket):\[\d+\]$/);
  });
});

describe('core: masked and read-only paths', () => {
  const sb = useSandbox();
  // The kernel decides which of docker's masked files exist (no /proc/kcore without
  // CONFIG_PROC_KCORE); test those this host has, and require at least two.
  const maskedFiles = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/interrupts', '/proc/latency_stats', '/proc/sched_debug'].filter((p) => existsSync(p));
  const maskedDirs = ['/proc/acpi', '/proc/scsi', '/proc/asound', '/sys/firmware'].filter((p) => existsSync(p));

  it('masked files read as empty, masked dirs are empty', async () => {
    expect(maskedFiles.length).toBeGreaterThanOrEqual(2);
    // The host's /proc/interrupts and /proc/timer_list are never empty: the mask is what empties them.
    const script = [...maskedFiles.map((p) => `echo "${p} $(wc -c < ${p})"`), ...maskedDirs.map((p) => `echo "${p} $(ls -A ${p} | wc -l)"`)].join('; ');
    const r = await sb.run(['sh', '-c', script]);
    expectExit(r, 0);
    const expected = [...maskedFiles, ...maskedDirs].map((p) => `${p} 0`).join('\n');
    expect(r.stdout.trim()).toBe(expected);
  });

  it('masked paths cannot be written', async () => {
    const dir = maskedDirs[0];
    expect(dir).toBeDefined();
    const r = await sb.run(['sh', '-c', `touch ${dir}/x 2>&1; echo rc=$?`]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/Read-only file system[\s\S]*rc=1/);
  });

  it('/proc/sys and the other read-only paths are not writable', async () => {
    // The one real write goes to the UTS-namespaced hostname sysctl: harmless even if
    // the read-only mount were missing. Everything else is probed with touch, whose
    // utimensat(2) fails with EROFS on a read-only mount and writes no data (writing
    // to /proc/sysrq-trigger would act on the host kernel). busybox's `test -w` cannot
    // be used: as root it answers from the mode bits and ignores read-only mounts.
    const script = [
      'echo changed > /proc/sys/kernel/hostname 2>/dev/null && echo hostname-written || echo hostname-ro',
      'hostname',
      'for p in /proc/sys /proc/sysrq-trigger /proc/bus /proc/fs /proc/irq; do',
      '  [ -e $p ] || continue',
      '  f=$p; [ -d $p ] && f=$(find $p -type f | head -n 1)',
      '  touch $f 2>/tmp/err; grep -q "Read-only file system" /tmp/err && echo "$p ro" || echo "$p writable ($f: $(cat /tmp/err))"',
      'done',
      'grep -E " /proc/sys " /proc/self/mountinfo | cut -d" " -f6',
    ].join('\n');
    const r = await sb.run(['sh', '-c', script], ['--hostname', 'ro-test']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 2)).toEqual(['hostname-ro', 'ro-test']);
    const probed = lines.slice(2, -1);
    const expected = ['/proc/sys', '/proc/sysrq-trigger', '/proc/bus', '/proc/fs', '/proc/irq'].filter((p) => existsSync(p)).map((p) => `${p} ro`);
    expect(probed).toEqual(expected);
    expect(lines.at(-1)).toMatch(/^ro,/);
  });
});

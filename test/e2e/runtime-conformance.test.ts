// Conformance of tsrun-runtime to the runtime-spec, one config.json field at a time,
// read back from inside the container (or from the kernel, for what the container
// cannot see). Written from config.md, config-linux.md and runtime.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useSandbox, parseStatus } from '../helpers/sandbox.js';
import { makeBundle, nsInode, runtime, runtimeIds, type RuntimeOptions, type RuntimeResult, type SpecJson } from '../helpers/bundle.js';
import { until } from '../helpers/wait.js';
import { CAPABILITIES } from '../../src/security/capabilities.js';
import { SYSCALL_TABLES } from '../../src/security/seccomp/tables.js';
import { HAS_SYS_RESOURCE, NO_SYS_RESOURCE_ERROR } from '../helpers/caps.js';

const sb = useSandbox();
const rtRoot = (): string => join(sb.root, 'run');
const rt = (args: string[], o: Partial<RuntimeOptions> = {}): Promise<RuntimeResult> => runtime(args, { root: rtRoot(), outDir: join(sb.dir, 'io'), ...o });

function ok(r: RuntimeResult, code = 0): void {
  expect(r.timedOut, `timed out: ${r.command}`).toBe(false);
  expect(r.exitCode, `exit status of ${r.command}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(code);
}

let n = 0;
/** `tsrun-runtime run` (foreground) of a fresh bundle: the container's stdout is the result's. */
async function runIn(script: string, edit?: (s: SpecJson) => void, code = 0): Promise<string> {
  const b = makeBundle(join(sb.dir, `bundle${++n}`), { args: ['sh', '-c', script], edit });
  const r = await rt(['run', '--bundle', b.dir, `conf${n}`]);
  ok(r, code);
  expect(runtimeIds(rtRoot())).toEqual([]);
  return r.stdout;
}

const PROC_NS: Record<string, string> = { pid: 'pid', network: 'net', ipc: 'ipc', uts: 'uts', mount: 'mnt', cgroup: 'cgroup' };
const hostNs = (t: string): string => nsInode(readlinkSync(`/proc/self/ns/${PROC_NS[t]}`));
const nsScript = Object.entries(PROC_NS).map(([t, f]) => `echo ${t}=$(readlink /proc/self/ns/${f})`).join('; ');
const parseNs = (out: string): Record<string, string> => Object.fromEntries(out.trim().split('\n').map((l) => l.split('=')).map(([k, v]) => [k!, nsInode(v!)]));

describe('namespaces (config-linux.md "Namespaces")', () => {
  it.each(Object.keys(PROC_NS))('%s: listed without a path -> a fresh one; left out -> the runtime\'s', async (type) => {
    const fresh = parseNs(await runIn(nsScript, (s) => {
      s.linux.namespaces = type === 'mount' ? [{ type: 'mount' }] : [{ type: 'mount' }, { type }];
    }));
    expect(fresh[type], `${type} namespace should be new`).not.toBe(hostNs(type));
    if (type !== 'pid' && type !== 'mount') {
      const shared = parseNs(await runIn(nsScript, (s) => {
        s.linux.namespaces = [{ type: 'mount' }];
      }));
      expect(shared[type], `${type} namespace should be the host's`).toBe(hostNs(type));
    }
  });

  it.each(Object.keys(PROC_NS))('%s: joined by path (/proc/PID/ns/...) -> exactly that namespace', async (type) => {
    // A holder process owns one namespace of each type; with --fork its child is the
    // one inside the new pid namespace.
    const holder: ChildProcess = spawn('unshare', ['--kill-child', '--net', '--uts', '--ipc', '--mount', '--cgroup', '--pid', '--fork', 'sleep', '300'], { stdio: 'ignore' });
    try {
      let inner = 0;
      await until(() => {
        try {
          const kids = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8').trim();
          inner = Number(kids.split(' ')[0]);
          return inner > 0;
        } catch {
          return false;
        }
      }, 'the namespace holder');
      const want = nsInode(readlinkSync(`/proc/${inner}/ns/${PROC_NS[type]}`));
      expect(want).not.toBe(hostNs(type));
      const got = parseNs(await runIn(nsScript, (s) => {
        s.linux.namespaces = type === 'mount' ? [{ type: 'mount', path: `/proc/${inner}/ns/mnt` }] : [{ type: 'mount' }, { type, path: `/proc/${inner}/ns/${PROC_NS[type]}` }];
      }));
      expect(got[type]).toBe(want);
    } finally {
      // --kill-child: the inner sleep (PID 1 of the holder's pid namespace) dies with unshare
      holder.kill('SIGKILL');
      await until(() => holder.exitCode !== null || holder.signalCode !== null, 'the holder to die');
    }
  });

  it('a path that is not a namespace of that type fails create (config-linux.md: MUST generate an error)', async () => {
    const b = makeBundle(join(sb.dir, 'badns'), {
      edit: (s) => {
        s.linux.namespaces = [{ type: 'mount' }, { type: 'network', path: `/proc/self/ns/uts` }];
      },
    });
    const r = await rt(['create', '--bundle', b.dir, 'badns']);
    expect(r.exitCode).not.toBe(0);
    expect(runtimeIds(rtRoot())).toEqual([]);
  });

  it('no mount namespace: refused before anything is made (tsrun would otherwise mount on the host)', async () => {
    const b = makeBundle(join(sb.dir, 'nomnt'), { edit: (s) => { s.linux.namespaces = [{ type: 'pid' }]; } });
    const r = await rt(['create', '--bundle', b.dir, 'nomnt']);
    ok(r, 1);
    expect(r.stderr).toBe('tsrun-runtime: invalid OCI spec: linux.namespaces: has no "mount" namespace: tsrun mounts the rootfs and pivots into it in the container\'s own mount namespace (in the host\'s, those mounts would land on the host); add {"type": "mount"}\nhint: fix config.json (see https://github.com/opencontainers/runtime-spec/blob/main/config.md)\n');
    expect(runtimeIds(rtRoot())).toEqual([]);
  });

  it('pid namespace: the command is PID 1 and sees only its own processes', async () => {
    const out = await runIn('echo $$; ls /proc | grep -c "^[0-9]"');
    const [pid, count] = out.trim().split('\n').map(Number);
    expect(pid).toBe(1);
    expect(count).toBeLessThanOrEqual(3);
  });
});

describe('root and mounts (config.md "Root", "Mounts"; config-linux.md)', () => {
  it('root.readonly: true -> the root is read-only; false -> writable', async () => {
    expect(await runIn('touch /newfile 2>&1; echo rc=$?')).toMatch(/Read-only file system[\s\S]*rc=1/);
    expect(await runIn('touch /newfile && echo rc=$?', (s) => {
      s.root.readonly = false;
    })).toBe('rc=0\n');
  });

  it('rootfsPropagation: private -> no peer group on /; shared -> a shared peer group', async () => {
    const rootLine = (out: string): string => out.split('\n').find((l) => l.split(' ')[4] === '/') ?? '';
    const priv = rootLine(await runIn('cat /proc/self/mountinfo', (s) => {
      s.linux.rootfsPropagation = 'private';
    }));
    expect(priv).not.toBe('');
    expect(priv).not.toMatch(/ shared:\d+/);
    expect(priv).not.toMatch(/ master:\d+/);
    const shared = rootLine(await runIn('cat /proc/self/mountinfo', (s) => {
      s.linux.rootfsPropagation = 'shared';
    }));
    expect(shared).toMatch(/ shared:\d+/);
  });

  it('maskedPaths: a file reads empty, a directory lists empty', async () => {
    const b = makeBundle(join(sb.dir, 'mask'), { args: ['sh', '-c', 'echo "f=[$(cat /secret.txt)]"; echo "d=[$(ls /secretdir)]"; cat /proc/kcore | wc -c'] });
    writeFileSync(join(b.rootfs, 'secret.txt'), 'TOPSECRET');
    mkdirSync(join(b.rootfs, 'secretdir'));
    writeFileSync(join(b.rootfs, 'secretdir', 'key'), 'k');
    b.spec.linux.maskedPaths = ['/secret.txt', '/secretdir', '/proc/kcore', '/does/not/exist'];
    b.save();
    const r = await rt(['run', '--bundle', b.dir, 'mask']);
    ok(r);
    expect(r.stdout).toBe('f=[]\nd=[]\n0\n');
  });

  it('readonlyPaths: writes fail with EROFS, reads work', async () => {
    const b = makeBundle(join(sb.dir, 'rop'), {
      args: ['sh', '-c', 'cat /out/ro/keep; echo x > /out/ro/f 2>&1; echo rc=$?; echo 1 > /proc/sys/kernel/hostname 2>&1; echo rc2=$?'],
      edit: (s) => {
        s.linux.readonlyPaths = ['/out/ro', '/proc/sys'];
      },
    });
    mkdirSync(join(b.out, 'ro'));
    writeFileSync(join(b.out, 'ro', 'keep'), 'kept');
    const r = await rt(['run', '--bundle', b.dir, 'rop']);
    ok(r);
    expect(r.stdout).toBe('keptrc=1\nrc2=1\n');
    // the shell reports a failed redirection on its own stderr
    expect(r.stderr.match(/Read-only file system/g)).toHaveLength(2);
    expect(existsSync(join(b.out, 'ro', 'f'))).toBe(false);
  });

  it('mounts: bind ro and rw, tmpfs with its options', async () => {
    const ro = sb.mkdir('host-ro');
    writeFileSync(join(ro, 'data'), 'from-host');
    const rw = sb.mkdir('host-rw');
    const out = await runIn([
      'cat /mnt/ro/data; echo',
      'touch /mnt/ro/x 2>/dev/null; echo ro-write=$?',
      'echo written > /mnt/rw/new; echo rw-write=$?',
      'stat -c "tmp-mode=%a" /mnt/tmp',
      'grep " /mnt/tmp " /proc/self/mountinfo',
      'dd if=/dev/zero of=/mnt/tmp/big bs=1k count=2048 2>/dev/null; echo big=$?',
    ].join('; '), (s) => {
      s.mounts.push(
        { destination: '/mnt/ro', type: 'bind', source: ro, options: ['bind', 'ro'] },
        { destination: '/mnt/rw', type: 'bind', source: rw, options: ['rbind', 'rw'] },
        { destination: '/mnt/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'size=1m', 'mode=0710'] },
      );
    });
    const lines = out.split('\n');
    expect(lines[0]).toBe('from-host');
    expect(lines[1]).toBe('ro-write=1');
    expect(lines[2]).toBe('rw-write=0');
    expect(readFileSync(join(rw, 'new'), 'utf8')).toBe('written\n');
    expect(lines[3]).toBe('tmp-mode=710');
    expect(lines[4]).toMatch(/ \/mnt\/tmp \S*nosuid/);
    expect(lines[4]).toMatch(/nodev/);
    expect(lines[4]).toMatch(/noexec/);
    expect(lines[4]).toMatch(/ tmpfs .*size=1024k/);
    expect(lines[5]).toBe('big=1');
    expect(existsSync(join(sb.dir, 'bundle' + n, 'rootfs', 'mnt', 'tmp', 'big'))).toBe(false);
  });

  it('mounts are made in the listed order: /proc first, then the rest, as the mount table shows (config.md "Mounts")', async () => {
    const ro = sb.mkdir('host-order');
    let listed: string[] = [];
    // /proc first (as in the default list) and a bind mount last. stdin is /dev/null,
    // opened by path in the container: it must still show that path afterwards
    const out = await runIn('cut -d" " -f5 /proc/self/mountinfo; echo --; readlink /proc/self/fd/0; grep " /mnt/unb " /proc/self/mountinfo', (s) => {
      s.mounts.push(
        { destination: '/mnt/order', type: 'bind', source: ro, options: ['bind', 'ro'] },
        // an unbindable mount cannot be cloned as it is: it must come through unbindable
        { destination: '/mnt/unb', type: 'tmpfs', source: 'tmpfs', options: ['runbindable'] },
      );
      listed = s.mounts.map((m: { destination: string }) => m.destination);
    });
    const [table, rest] = out.split('--\n');
    const [fd0, unb] = rest!.trim().split('\n');
    expect(unb).toMatch(/ unbindable /);
    const points = table!.trim().split('\n');
    expect(listed[0]).toBe('/proc');
    const at = listed.map((d) => points.indexOf(d));
    expect(at.every((i) => i > 0), `every mount is in the table:\n${points.join('\n')}`).toBe(true);
    expect(at, `listed order ${listed.join(' ')}; table:\n${points.join('\n')}`).toEqual([...at].sort((a, b) => a - b));
    expect(fd0!.trim()).toBe('/dev/null');
  });

  it('a mount destination that climbs out of the rootfs (..) stays inside it', async () => {
    const src = sb.mkdir('climb');
    writeFileSync(join(src, 'f'), 'x');
    const escapeTo = join(sb.dir, 'escaped');
    const out = await runIn('ls /escaped 2>/dev/null | head -1; echo done', (s) => {
      s.mounts.push({ destination: `/../../../../../../../..${escapeTo}`, type: 'bind', source: src, options: ['bind', 'ro'] });
    });
    expect(out).toMatch(/done/);
    expect(existsSync(join(escapeTo, 'f'))).toBe(false);
  });
});

describe('devices (config-linux.md "Devices", "Default Devices")', () => {
  it('linux.devices: a char device with its major:minor, mode and owner', async () => {
    const out = await runIn('stat -c "%F %t:%T %a %u:%g" /dev/mydev; echo x > /dev/mydev && echo write-ok', (s) => {
      s.linux.devices = [{ path: '/dev/mydev', type: 'c', major: 1, minor: 3, fileMode: 0o620, uid: 0, gid: 5 }];
    });
    // stat prints major/minor in hex
    expect(out).toBe('character special file 1:3 620 0:5\nwrite-ok\n');
  });

  it('the default devices are there with the right numbers, and /dev/fd, stdin/out/err, ptmx links', async () => {
    const out = await runIn('for d in null zero full random urandom tty; do stat -c "%n %t:%T" /dev/$d; done; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done');
    expect(out).toBe([
      '/dev/null 1:3', '/dev/zero 1:5', '/dev/full 1:7', '/dev/random 1:8', '/dev/urandom 1:9', '/dev/tty 5:0',
      '/proc/self/fd', '/proc/self/fd/0', '/proc/self/fd/1', '/proc/self/fd/2', 'pts/ptmx', '',
    ].join('\n'));
  });
  it('a deny-all device cgroup rule (what podman and containerd send) still leaves the default devices usable', async () => {
    // config-linux.md "Default Devices": the runtime MUST supply /dev/null, zero, full,
    // random, urandom, tty, ptmx. Engines send only [{allow: false, access: rwm}] plus
    // their extra devices, and rely on the runtime to allow the defaults (runc does).
    const out = await runIn('head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok; echo x > /dev/full; echo full=$?', (s) => {
      s.linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
    });
    expect(out).toBe('4\n4\nnull-ok\nfull=1\n');
  });
});

describe('sysctl, rlimits, capabilities, oomScoreAdj, noNewPrivileges', () => {
  it('linux.sysctl: set inside the container\'s namespace, the host unchanged', async () => {
    const hostFwd = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const hostMsgmax = readFileSync('/proc/sys/kernel/msgmax', 'utf8').trim();
    const out = await runIn('cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax', (s) => {
      s.linux.sysctl = { 'net.ipv4.ip_forward': hostFwd === '1' ? '0' : '1', 'kernel.msgmax': '12345' };
    });
    expect(out).toBe(`${hostFwd === '1' ? '0' : '1'}\n12345\n`);
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe(hostFwd);
    expect(readFileSync('/proc/sys/kernel/msgmax', 'utf8').trim()).toBe(hostMsgmax);
  });

  // runc refuses these at create; writing them would change the host. The values given
  // are the host's current ones, so that this test cannot change the host even when the
  // runtime wrongly writes them.
  it.each([
    ['a net.* sysctl without a network namespace', 'net.ipv4.ip_forward', true],
    ['a sysctl no namespace isolates (vm.*)', 'vm.swappiness', false],
  ] as const)('%s is refused, not written to the host', async (_what, key, dropNet) => {
    const hostPath = `/proc/sys/${key.replace(/\./g, '/')}`;
    const before = readFileSync(hostPath, 'utf8');
    const b = makeBundle(join(sb.dir, 'badsysctl'), {
      edit: (s) => {
        if (dropNet) s.linux.namespaces = s.linux.namespaces.filter((x: { type: string }) => x.type !== 'network');
        s.linux.sysctl = { [key]: before.trim() };
      },
    });
    const r = await rt(['run', '--bundle', b.dir, 'badsysctl']);
    expect(r.exitCode, `${key} was accepted: the runtime wrote it through the host's /proc/sys`).not.toBe(0);
    expect(readFileSync(hostPath, 'utf8')).toBe(before);
    expect(runtimeIds(rtRoot())).toEqual([]);
  });

  it('process.rlimits: soft and hard limits as given', async () => {
    const out = await runIn('grep -E "Max (open files|core file size|processes)" /proc/self/limits', (s) => {
      s.process.rlimits = [
        { type: 'RLIMIT_NOFILE', soft: 512, hard: 1000 },
        { type: 'RLIMIT_CORE', soft: 0, hard: 4096 },
        { type: 'RLIMIT_NPROC', soft: 100, hard: 200 },
      ];
    });
    expect(out).toMatch(/Max core file size\s+0\s+4096\s/);
    expect(out).toMatch(/Max processes\s+100\s+200\s/);
    expect(out).toMatch(/Max open files\s+512\s+1000\s/);
  });

  it('process.capabilities: all five sets, exactly (non-root user, so ambient drives permitted/effective)', async () => {
    const mask = (names: string[]): bigint => names.reduce((m, c) => m | (1n << BigInt(CAPABILITIES[c]!)), 0n);
    const caps = {
      bounding: ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      permitted: ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      effective: ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'],
      inheritable: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      ambient: ['CAP_NET_BIND_SERVICE'],
    };
    const status = parseStatus(await runIn('cat /proc/self/status', (s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      delete s.process.rlimits; // a separate test covers rlimits with a non-root user
      s.process.capabilities = caps;
    }));
    const hex = (k: string): bigint => BigInt('0x' + status[k]);
    expect(hex('CapBnd')).toBe(mask(caps.bounding));
    expect(hex('CapInh')).toBe(mask(caps.inheritable));
    expect(hex('CapAmb')).toBe(mask(caps.ambient));
    // execve(2) of a file without file capabilities by a non-root user: P' = E' = ambient
    expect(hex('CapPrm')).toBe(mask(caps.ambient));
    expect(hex('CapEff')).toBe(mask(caps.ambient));
  });

  it('process.capabilities for root: bounding exact, and nothing outside it is effective', async () => {
    const caps = ['CAP_CHOWN', 'CAP_KILL'];
    const mask = caps.reduce((m, c) => m | (1n << BigInt(CAPABILITIES[c]!)), 0n);
    const status = parseStatus(await runIn('cat /proc/self/status', (s) => {
      s.process.capabilities = { bounding: caps, permitted: caps, effective: caps, inheritable: [], ambient: [] };
    }));
    expect(BigInt('0x' + status.CapBnd)).toBe(mask);
    expect(BigInt('0x' + status.CapEff)).toBe(mask);
    expect(BigInt('0x' + status.CapPrm)).toBe(mask);
    expect(BigInt('0x' + status.CapInh)).toBe(0n);
  });

  it('process.oomScoreAdj and noNewPrivileges', async () => {
    const out = await runIn('cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status', (s) => {
      s.process.oomScoreAdj = 123;
      s.process.noNewPrivileges = true;
    });
    expect(out).toMatch(/^123\nNoNewPrivs:\s+1\n$/);
    const out2 = await runIn('grep NoNewPrivs /proc/self/status', (s) => {
      s.process.noNewPrivileges = false;
    });
    expect(out2).toMatch(/NoNewPrivs:\s+0/);
  });
});

describe('seccomp (config-linux.md "Seccomp")', () => {
  // An allowlist written before clone3 and close_range that still lists one newer
  // syscall, the shape runtime-tools' generator gives. tsrun starts the process under
  // the filter (glibc's posix_spawn tries clone3, and closes the inherited fds with
  // close_range), so with EPERM for both nothing could start; runc starts nothing
  // after loading it, and its ENOSYS rule (newer than anything listed) misses clone3.
  const x64 = SYSCALL_TABLES.x86_64;
  const preClone3 = Object.keys(x64).filter((n) => x64[n]! < x64.clone3!);
  const oldAllowlist = (first: Array<{ names: string[]; action: string }>): SpecJson => ({
    defaultAction: 'SCMP_ACT_ERRNO',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [...first, { names: [...preClone3, 'landlock_create_ruleset'], action: 'SCMP_ACT_ALLOW' }],
  });

  it.runIf(process.arch === 'x64')('an allowlist older than clone3 starts the process; its rules apply in order, first match wins', async () => {
    // mkdir's refusal comes ahead of the allowlist that also names it
    const out = await runIn('echo started; mkdir /tmp/d && echo made || echo refused; grep ^Seccomp: /proc/self/status', (s) => {
      s.linux.seccomp = oldAllowlist([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }]);
    });
    expect(out).toBe('started\nrefused\nSeccomp:\t2\n');
  });

  it.runIf(process.arch === 'x64')('a profile that refuses what starting the process needs: create fails with a clear error, nothing left', async () => {
    const b = makeBundle(join(sb.dir, 'bundle-noclose'), { args: ['true'], edit: (s) => { s.linux.seccomp = oldAllowlist([{ names: ['setsid'], action: 'SCMP_ACT_ERRNO' }]); } });
    const r = await rt(['create', '--bundle', b.dir, 'noclose']);
    ok(r, 1);
    expect(r.stderr).toMatch(/starting the container process failed \(E[A-Z]+\) under its seccomp profile/);
    expect(runtimeIds(rtRoot())).toEqual([]);
  });
});

describe('process and identity (config.md "Process", "Hostname")', () => {
  it('hostname and domainname', async () => {
    const out = await runIn('hostname; cat /proc/sys/kernel/domainname', (s) => {
      s.hostname = 'conf-host';
      s.domainname = 'conf.example';
    });
    expect(out).toBe('conf-host\nconf.example\n');
  });

  it('process.user: uid, gid, additionalGids (and nothing else), umask', async () => {
    const status = parseStatus(await runIn('cat /proc/self/status; echo "Umask2: $(umask)"', (s) => {
      s.process.user = { uid: 1000, gid: 1000, additionalGids: [10, 29], umask: 0o027 };
      delete s.process.rlimits;
    }));
    expect(status.Uid!.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(status.Gid!.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(status.Groups!.split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b)).toEqual([10, 29]);
    expect(status.Umask2).toBe('0027');
  });

  // Without CAP_SYS_RESOURCE (this project's machines) too: prlimit(2) on another
  // user's process is then done with the container's real ids (launcher.ts).
  it('process.user non-root with the default rlimits (lowering RLIMIT_NOFILE) starts, with them', async () => {
    const out = await runIn('id -u; ulimit -n; ulimit -Hn', (s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 512, hard: 1024 }];
    });
    expect(out).toBe('1000\n512\n1024\n');
  });

  it.skipIf(HAS_SYS_RESOURCE)('a hard rlimit above tsrun\'s own, where root lacks CAP_SYS_RESOURCE: a clear error, nothing left', async () => {
    const hard = Number(/^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]);
    const b = makeBundle(join(sb.dir, 'nosysres'), { args: ['true'], edit: (s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: hard + 1 }];
    } });
    const r = await rt(['run', '--bundle', b.dir, 'nosysres']);
    ok(r, 1);
    expect(r.stderr).toMatch(NO_SYS_RESOURCE_ERROR);
    expect(runtimeIds(rtRoot())).toEqual([]);
  });

  it('process.cwd, args and env', async () => {
    const out = await runIn('pwd; echo "$FOO|$BAR"; echo "$0"', (s) => {
      s.process.cwd = '/home/user';
      s.process.env = ['PATH=/bin', 'FOO=foo value', 'BAR='];
    });
    expect(out).toBe('/home/user\nfoo value|\nsh\n');
  });

  it('a cwd that does not exist is created (runc does) or refused, never the host\'s', async () => {
    const b = makeBundle(join(sb.dir, 'cwd'), {
      args: ['pwd'],
      edit: (s) => {
        s.process.cwd = '/not/there';
        s.root.readonly = false;
      },
    });
    const r = await rt(['run', '--bundle', b.dir, 'cwd']);
    if (r.exitCode === 0) expect(r.stdout).toBe('/not/there\n');
    else expect(r.stderr).toMatch(/not\/there/);
  });

  it('annotations reach the state', async () => {
    const b = makeBundle(join(sb.dir, 'ann'), {
      args: ['true'],
      edit: (s) => {
        s.annotations = { 'com.example.a': '1', 'com.example.b': 'two words' };
      },
    });
    ok(await rt(['create', '--bundle', b.dir, 'ann']));
    try {
      const st = JSON.parse((await rt(['state', 'ann'])).stdout) as { annotations: Record<string, string> };
      expect(st.annotations).toEqual({ 'com.example.a': '1', 'com.example.b': 'two words' });
    } finally {
      ok(await rt(['delete', '--force', 'ann']));
    }
  });
});

describe('cgroupsPath (config-linux.md "Control groups")', () => {
  const v1Memory = '/sys/fs/cgroup/memory';
  const hasV1Memory = existsSync(join(v1Memory, 'cgroup.procs'));

  async function cgroupOfCreated(cgroupsPath: string): Promise<{ file: string; pid: number }> {
    const b = makeBundle(join(sb.dir, 'cg'), {
      args: ['sleep', '30'],
      edit: (s) => {
        s.linux.cgroupsPath = cgroupsPath;
        s.linux.resources = { memory: { limit: 64 * 1024 * 1024 } };
      },
    });
    ok(await rt(['create', '--bundle', b.dir, 'cg']));
    const pid = Number(JSON.parse((await rt(['state', 'cg'])).stdout).pid);
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => /:memory:/.test(l)) ?? readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::')) ?? '';
    return { file: line.slice(line.lastIndexOf(':') + 1), pid };
  }

  it.runIf(hasV1Memory)('absolute cgroupsPath: the container process is in exactly that cgroup, with its limit, removed on delete', async () => {
    const path = `/tsrun-e2e-${process.pid}-${Date.now()}`;
    try {
      const { file, pid } = await cgroupOfCreated(path);
      expect(file).toBe(path);
      expect(readFileSync(join(v1Memory, path, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(pid));
      expect(readFileSync(join(v1Memory, path, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(64 * 1024 * 1024));
      ok(await rt(['delete', '--force', 'cg']));
      await until(() => !existsSync(join(v1Memory, path)), 'the cgroup to be removed', 5000);
    } finally {
      if (runtimeIds(rtRoot()).includes('cg')) await rt(['delete', '--force', 'cg']);
      for (const c of readdirSync('/sys/fs/cgroup')) {
        try {
          if (existsSync(join('/sys/fs/cgroup', c, path))) execRmdir(join('/sys/fs/cgroup', c, path));
        } catch {
          /* best effort */
        }
      }
    }
  });

  it.runIf(hasV1Memory)('relative cgroupsPath: below the runtime\'s own cgroup', async () => {
    const rel = `tsrun-e2e-rel-${process.pid}-${Date.now()}`;
    const own = (readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => /:memory:/.test(l)) ?? '').split(':')[2] ?? '/';
    try {
      const { file, pid } = await cgroupOfCreated(rel);
      expect(file.endsWith('/' + rel)).toBe(true);
      expect(readFileSync(join(v1Memory, file, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(pid));
      ok(await rt(['delete', '--force', 'cg']));
      await until(() => !existsSync(join(v1Memory, file)), 'the cgroup to be removed', 5000);
    } finally {
      if (runtimeIds(rtRoot()).includes('cg')) await rt(['delete', '--force', 'cg']);
      for (const c of readdirSync('/sys/fs/cgroup')) {
        for (const p of [join('/sys/fs/cgroup', c, rel), join('/sys/fs/cgroup', c, own, rel)]) {
          try {
            if (existsSync(p)) execRmdir(p);
          } catch {
            /* best effort */
          }
        }
      }
    }
  });
});

function execRmdir(p: string): void {
  // cgroupfs directories are removed with rmdir(2), never recursively
  rmdirSync(p);
}

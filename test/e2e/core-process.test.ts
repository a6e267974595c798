// Core runtime, the process: cwd, environment, user and groups, capabilities and
// rlimits, each read back from inside the container.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, parseStatus, useSandbox } from '../helpers/sandbox.js';

describe('core: cwd', () => {
  const sb = useSandbox();

  it('defaults to /', async () => {
    const r = await sb.run(['pwd']);
    expectExit(r, 0);
    expect(r.stdout).toBe('/\n');
  });

  it('-w sets the working directory', async () => {
    const r = await sb.run(['sh', '-c', 'pwd; readlink /proc/$$/cwd'], ['-w', '/etc']);
    expectExit(r, 0);
    expect(r.stdout).toBe('/etc\n/etc\n');
  });

  it('-w creates a missing directory, inside the rootfs', async () => {
    const rootfs = sb.rootfs();
    expect(existsSync(join(rootfs, 'work/deep/dir'))).toBe(false);
    const r = await sb.run(['pwd'], ['-w', '/work/deep/dir']);
    expectExit(r, 0);
    expect(r.stdout).toBe('/work/deep/dir\n');
    expect(statSync(join(rootfs, 'work/deep/dir')).isDirectory()).toBe(true);
  });
});

describe('core: environment', () => {
  const sb = useSandbox();

  it('-e, --env-file and -e KEY (copied from tsrun\'s environment) set the environment, and nothing else leaks in', async () => {
    const envFile = sb.writeFile('env.list', '# a comment\nFROM_FILE=file value\n\nOVERRIDDEN=from-file\nFROM_HOST_VIA_FILE\n');
    const r = await sb.run(
      ['env'],
      ['-e', 'FOO=bar', '-e', 'WITH_EQ=a=b', '--env-file', envFile, '-e', 'OVERRIDDEN=from-flag', '-e', 'FROM_HOST', '-e', 'UNSET_ON_HOST', '--hostname', 'envbox'],
      { env: { FROM_HOST: 'host value', FROM_HOST_VIA_FILE: 'via file', HOST_SECRET: 'must-not-leak', UNSET_ON_HOST: undefined } },
    );
    expectExit(r, 0);
    const env = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env).toEqual({
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOSTNAME: 'envbox',
      HOME: '/root',
      FOO: 'bar',
      WITH_EQ: 'a=b',
      FROM_FILE: 'file value',
      OVERRIDDEN: 'from-flag',
      FROM_HOST: 'host value',
      FROM_HOST_VIA_FILE: 'via file',
    });
  });

  // Node 20 reads `--env-file` anywhere in argv before `--`, even after the script
  // name, so it can grab tsrun's own flag and exit 9 before tsrun runs.
  it('a missing --env-file is a usage error (125)', async () => {
    const r = await sb.run(['true'], ['--env-file', join(sb.dir, 'nope.env')]);
    expectExit(r, 125);
    expect(r.stderr).toContain('nope.env');
  });
});

describe('core: user and groups', () => {
  const sb = useSandbox();

  it('runs as root by default, with no supplementary groups from the host', async () => {
    const r = await sb.run(['sh', '-c', 'id; grep -E "^(Uid|Gid|Groups):" /proc/self/status']);
    expectExit(r, 0);
    const [id, ...rest] = r.stdout.trim().split('\n');
    // busybox id prints groups= only when there are supplementary groups.
    expect(id).toBe('uid=0(root) gid=0(root)');
    const st = parseStatus(rest.join('\n'));
    expect(st.Uid).toBe('0\t0\t0\t0');
    expect(st.Gid).toBe('0\t0\t0\t0');
    expect(st.Groups).toBe('');
  });

  it('-u 1000:1000 sets every uid and gid, and clears supplementary groups', async () => {
    const r = await sb.run(['sh', '-c', 'id -u; id -g; grep -E "^(Uid|Gid|Groups):" /proc/self/status; echo $HOME; touch /root/x 2>&1 || true'], ['-u', '1000:1000']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 2)).toEqual(['1000', '1000']);
    const st = parseStatus(lines.slice(2, 5).join('\n'));
    expect(st.Uid).toBe('1000\t1000\t1000\t1000');
    expect(st.Gid).toBe('1000\t1000\t1000\t1000');
    // Not `user`'s groups from /etc/group (10, 29): -u with numbers sets exactly these ids.
    expect(st.Groups).toBe('');
    expect(lines[5]).toBe('/');
    // A real permission check, not just the numbers: /root is 0700 root.
    expect(lines[6]).toContain('Permission denied');
  });

  it('-u 1000 alone uses gid 0, as docker does without a passwd entry to name a group', async () => {
    const r = await sb.run(['sh', '-c', 'echo $(id -u):$(id -g)'], ['-u', '1000']);
    expectExit(r, 0);
    expect(r.stdout).toBe('1000:0\n');
  });

  it('process.user.additionalGids from a bundle become the supplementary groups', async () => {
    const bundle = sb.mkdir('bundle');
    sb.rootfs('bundle/rootfs');
    const spec = await specJson(sb);
    spec.process.args = ['sh', '-c', 'grep -E "^(Uid|Gid|Groups):" /proc/self/status; id -G'];
    spec.process.user = { uid: 1000, gid: 1000, additionalGids: [10, 29, 4242] };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    const r = await sb.tsrun(['run', '--bundle', bundle]);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    const st = parseStatus(lines.slice(0, 3).join('\n'));
    expect(st.Uid).toBe('1000\t1000\t1000\t1000');
    expect(st.Gid).toBe('1000\t1000\t1000\t1000');
    expect(st.Groups).toBe('10 29 4242');
    expect(lines[3]!.split(' ').sort()).toEqual(['10', '1000', '29', '4242']);
  });
});

/** `tsrun spec`, parsed: the starting point for bundle tests. */
async function specJson(sb: ReturnType<typeof useSandbox>): Promise<any> {
  const r = await sb.tsrun(['spec']);
  expectExit(r, 0);
  return JSON.parse(r.stdout);
}

describe('core: capabilities', () => {
  const sb = useSandbox();
  // docker's default set (moby oci/caps/defaults.go): CHOWN DAC_OVERRIDE FOWNER FSETID
  // KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
  const DOCKER = 0xa80425fbn;
  const lastCap = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  const ALL = (1n << BigInt(lastCap + 1)) - 1n;
  const hex = (n: bigint): string => n.toString(16).padStart(16, '0');

  async function caps(flags: string[]): Promise<Record<string, string>> {
    const r = await sb.run(['grep', '^Cap', '/proc/self/status'], flags);
    expectExit(r, 0);
    return parseStatus(r.stdout);
  }
  const sets = (eff: bigint, inh = 0n, amb = 0n) => ({ CapInh: hex(inh), CapPrm: hex(eff), CapEff: hex(eff), CapBnd: hex(eff), CapAmb: hex(amb) });

  it('defaults to docker\'s set in bounding, effective and permitted; inheritable and ambient empty', async () => {
    expect(await caps([])).toEqual(sets(DOCKER));
    expect(hex(DOCKER)).toBe('00000000a80425fb');
  });

  it('--cap-add adds to every set (NET_ADMIN = bit 12, CAP_ prefix and lower case accepted)', async () => {
    expect(await caps(['--cap-add', 'NET_ADMIN', '--cap-add', 'cap_sys_time'])).toEqual(sets(DOCKER | (1n << 12n) | (1n << 25n)));
  });

  it('--cap-drop removes from every set', async () => {
    expect(await caps(['--cap-drop', 'CHOWN', '--cap-drop', 'CAP_NET_RAW'])).toEqual(sets(DOCKER & ~1n & ~(1n << 13n)));
  });

  it('--cap-drop ALL empties every set, and the loss is real', async () => {
    expect(await caps(['--cap-drop', 'ALL'])).toEqual(sets(0n));
    // Without CAP_CHOWN even root cannot give a file away.
    const r = await sb.run(['sh', '-c', 'touch /tmp/f && chown 1000 /tmp/f 2>&1; echo rc=$?'], ['--cap-drop', 'ALL']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/Operation not permitted[\s\S]*rc=1/);
  });

  it('--cap-drop ALL --cap-add X leaves exactly X', async () => {
    expect(await caps(['--cap-drop', 'ALL', '--cap-add', 'NET_BIND_SERVICE'])).toEqual(sets(1n << 10n));
  });

  it('--cap-add ALL gives every capability this kernel knows (that tsrun itself holds)', async () => {
    // tsrun cannot grant what it lacks: under a runner that withholds a capability from
    // root (CAP_SYS_RESOURCE, say), ALL means all that tsrun holds, as in podman.
    const own = BigInt('0x' + parseStatus(readFileSync('/proc/self/status', 'utf8')).CapBnd);
    expect(await caps(['--cap-add', 'ALL'])).toEqual(sets(ALL & own));
    // Bits below the drop are always holdable: all but the missing ones still work.
    expect(await caps(['--cap-add', 'SYS_ADMIN', '--cap-add', 'SYS_PTRACE'])).toEqual(sets(DOCKER | (1n << 21n) | (1n << 19n)));
  });

  it('an unknown capability name is a usage error (125) that names it, and nothing runs', async () => {
    const marker = join(sb.rootfs(), 'tmp/ran');
    const r = await sb.run(['touch', '/tmp/ran'], ['--cap-add', 'NOT_A_CAP']);
    expectExit(r, 125);
    expect(r.stderr).toContain('NOT_A_CAP');
    expect(existsSync(marker)).toBe(false);
  });
});

describe('core: rlimits', () => {
  const sb = useSandbox();

  it('--ulimit nofile=SOFT:HARD sets both limits of the container process', async () => {
    const r = await sb.run(['sh', '-c', 'ulimit -Sn; ulimit -Hn; grep "Max open files" /proc/self/limits'], ['--ulimit', 'nofile=2048:4096']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 2)).toEqual(['2048', '4096']);
    expect(lines[2]).toMatch(/^Max open files\s+2048\s+4096\s+files\s*$/);
  });

  it('--ulimit nofile=N (small) sets soft and hard to N, and the limit is enforced', async () => {
    // With nofile=8, fds 0-7 are usable: sh can open fd 7 but not fd 8 (in subshells: a
    // failed redirection on `exec` ends a non-interactive shell). A limit this
    // low also checks that the runtime's own descriptors between spawn and execve
    // stay below it.
    const r = await sb.run(['sh', '-c', 'ulimit -Sn; ulimit -Hn; (exec 7</dev/null) && echo fd7-ok; (exec 8</dev/null) 2>/dev/null || echo fd8-refused'], ['--ulimit', 'nofile=8']);
    expectExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual(['8', '8', 'fd7-ok', 'fd8-refused']);
  });

  it('leaves tsrun\'s own limits alone (prlimit on the child, not setrlimit on itself)', async () => {
    const mine = readFileSync('/proc/self/limits', 'utf8');
    const r = await sb.run(['true'], ['--ulimit', 'nofile=4096']);
    expectExit(r, 0);
    expect(readFileSync('/proc/self/limits', 'utf8')).toBe(mine);
  });
});

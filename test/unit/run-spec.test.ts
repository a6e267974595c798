import { heldCapabilities } from '../../src/security/capabilities.js';
import { rlimitToU64 } from '../../src/spec/rlimit.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  capabilitySet, mergeEnv, parseEnv, parseTmpfs, parseUlimit, parseUser, parseVolume, specFromFlags, type RunFlags,
} from '../../src/engine/run-spec.js';
import { DEFAULT_CAPABILITIES, ALL_CAPABILITIES } from '../../src/security/capabilities.js';
import { TsrunError } from '../../src/errors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsrun-unit-runspec-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function flags(over: Partial<RunFlags> = {}): RunFlags {
  return {
    env: [], envFile: [], interactive: false, tty: false, readOnly: false, volume: [], tmpfs: [],
    capAdd: [], capDrop: [], ulimit: [], privileged: false, ...over,
  };
}

function usageError(f: () => unknown): TsrunError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TsrunError);
    expect((e as TsrunError).code).toBe('USAGE');
    expect((e as TsrunError).exitCode).toBe(125);
    return e as TsrunError;
  }
  throw new Error('expected a USAGE error');
}

const ID = '0123456789abcdef0123456789abcdef';

describe('environment', () => {
  it('-e KEY=VALUE sets, -e KEY copies from the host env, and is dropped when unset there', () => {
    const env = parseEnv({ env: ['A=1', 'FROM_HOST', 'NOT_SET', 'EMPTY='], envFile: [] }, { FROM_HOST: 'h v' });
    expect(env).toEqual(['A=1', 'FROM_HOST=h v', 'EMPTY=']);
  });

  it('--env-file skips comments and blank lines, and -e comes after it', () => {
    const file = join(dir, 'env');
    writeFileSync(file, '# a comment\n# COMMENTED=out\n\nFILE=1\n  SPACED=2  \nPASS\n   # indented comment\nA=file\n');
    const env = parseEnv({ env: ['A=flag'], envFile: [file] }, { PASS: 'through' });
    expect(env).toEqual(['FILE=1', 'SPACED=2', 'PASS=through', 'A=file', 'A=flag']);
  });

  it('a missing --env-file is a usage error naming the file', () => {
    const e = usageError(() => parseEnv({ env: [], envFile: [join(dir, 'nope')] }, {}));
    expect(e.message).toContain(join(dir, 'nope'));
  });

  it('mergeEnv: later lists win, keeping the first position of a key', () => {
    expect(mergeEnv(['PATH=/bin', 'A=1'], ['A=2', 'B=x=y'], ['PATH=/usr/bin'])).toEqual(['PATH=/usr/bin', 'A=2', 'B=x=y']);
  });

  it('the spec\'s env: defaults, then TERM with a tty, then the image, then -e; HOME added unless set', () => {
    const s = specFromFlags(flags({ tty: true, env: ['TERM=vt100', 'X=flag'] }), ['sh'], {
      id: ID,
      image: { env: ['PATH=/opt/bin', 'X=image', 'Y=image'] },
    });
    expect(s.process!.env).toEqual(['PATH=/opt/bin', `HOSTNAME=${ID.slice(0, 12)}`, 'TERM=vt100', 'X=flag', 'Y=image', 'HOME=/root']);
    const user = specFromFlags(flags({ user: '1000' }), ['sh'], { id: ID });
    expect(user.process!.env).toContain('HOME=/');
    const home = specFromFlags(flags({ env: ['HOME=/home/me'] }), ['sh'], { id: ID });
    expect(home.process!.env!.filter((e) => e.startsWith('HOME='))).toEqual(['HOME=/home/me']);
    expect(specFromFlags(flags(), ['sh'], { id: ID }).process!.env!.some((e) => e.startsWith('TERM='))).toBe(false);
  });
});

describe('-u', () => {
  it('parses root, uid and uid:gid', () => {
    expect(parseUser(undefined)).toEqual({ uid: 0, gid: 0 });
    expect(parseUser('root')).toEqual({ uid: 0, gid: 0 });
    expect(parseUser('0')).toEqual({ uid: 0, gid: 0 });
    expect(parseUser('1000:50')).toEqual({ uid: 1000, gid: 50 });
    // docker: no group given and no passwd entry to take one from -> gid 0
    expect(parseUser('1000')).toEqual({ uid: 1000, gid: 0 });
  });

  it.each(['alice', '1000:', ':5', '-1', '10:x'])('refuses %s without an image passwd', (u) => {
    expect(usageError(() => parseUser(u)).message).toContain(`-u ${u}`);
  });
});

describe('-v', () => {
  it('makes an rbind mount, read-write by default', () => {
    expect(parseVolume('/srv/data:/data')).toEqual({ destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rw'] });
  });

  it('keeps ro and propagation options, drops SELinux relabel flags', () => {
    expect(parseVolume('/srv/x/../data:/data:ro,rslave,z')).toEqual({ destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'ro', 'rslave'] });
  });

  it.each([
    ['/a', /expected HOST-PATH:CONTAINER-PATH/],
    ['/a:/b:ro:x', /expected HOST-PATH:CONTAINER-PATH/],
    ['vol:/data', /host path must be absolute/],
    ['/a:data', /container path must be absolute/],
    ['/a:/b:rx', /unknown option "rx"/],
  ])('refuses %s', (v, re) => {
    expect(usageError(() => parseVolume(v)).message).toMatch(re);
  });

  it('volumes and tmpfs come after the default mounts in the spec', () => {
    const s = specFromFlags(flags({ volume: ['/srv:/srv:ro'], tmpfs: ['/run'] }), ['sh'], { id: ID });
    const dests = s.mounts!.map((m) => m.destination);
    expect(dests.slice(-2)).toEqual(['/run', '/srv']);
    expect(dests).toContain('/proc');
  });
});

describe('--tmpfs', () => {
  it('is nosuid,nodev,noexec plus the given options', () => {
    expect(parseTmpfs('/run')).toEqual({ destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec'] });
    expect(parseTmpfs('/run:size=64m,mode=1777')).toEqual({ destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'size=64m', 'mode=1777'] });
  });

  it('refuses a relative path', () => {
    expect(usageError(() => parseTmpfs('run:size=1m')).message).toMatch(/must be absolute/);
  });
});

describe('--ulimit', () => {
  it('NAME=SOFT[:HARD] maps to the RLIMIT_ name', () => {
    expect(parseUlimit('nofile=1024:2048')).toEqual({ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 });
    expect(parseUlimit('nproc=50')).toEqual({ type: 'RLIMIT_NPROC', soft: 50, hard: 50 });
  });

  it.each([
    ['nofile', /expected NAME=SOFT\[:HARD\]/],
    ['bogus=1', /NAME one of/],
    ['nofile=a', /expected NAME/],
    ['nofile=10:5', /soft limit is above the hard limit/],
  ])('refuses %s', (u, re) => {
    expect(usageError(() => parseUlimit(u)).message).toMatch(re);
  });

  it('-1 means unlimited: larger than any finite limit', () => {
    const r = parseUlimit('core=-1');
    expect(r.soft).toBe(r.hard);
    expect(r.soft).toBeGreaterThan(2 ** 63);
  });

  // 2**64-1 is not a safe integer: as a number it rounds to 2**64, which prlimit's u64
  // cannot hold. rlimitToU64 is the one place spec values become kernel values.
  it('-1 survives the conversion to the u64 prlimit takes', () => {
    const r = parseUlimit('core=-1');
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(rlimitToU64(r.soft));
    expect(b.readBigUInt64LE()).toBe(0xffffffffffffffffn);
    expect(rlimitToU64(1024)).toBe(1024n);
  });
});

describe('capabilities', () => {
  it('default set, plus adds, minus drops, in any spelling', () => {
    const caps = capabilitySet(['net_admin', 'CAP_SYS_TIME'], ['kill', 'CAP_CHOWN'], false);
    expect(caps).toContain('CAP_NET_ADMIN');
    expect(caps).toContain('CAP_SYS_TIME');
    expect(caps).not.toContain('CAP_KILL');
    expect(caps).not.toContain('CAP_CHOWN');
    expect(caps.length).toBe(DEFAULT_CAPABILITIES.length);
  });

  it('--cap-drop ALL leaves only what is added', () => {
    expect(capabilitySet(['NET_BIND_SERVICE'], ['ALL'], false)).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(capabilitySet([], ['all'], false)).toEqual([]);
  });

  it('--cap-add ALL gives every capability tsrun holds, --privileged too', () => {
    expect(capabilitySet(['ALL'], [], false, ALL_CAPABILITIES).sort()).toEqual([...ALL_CAPABILITIES].sort());
    expect(capabilitySet([], ['ALL'], true, ALL_CAPABILITIES).sort()).toEqual([...ALL_CAPABILITIES].sort());
    // Not more: capset(2) refuses a capability outside tsrun's own bounding set.
    const held = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
    expect(capabilitySet(['ALL'], [], false, held)).not.toContain('CAP_SYS_RESOURCE');
    expect(capabilitySet([], [], true, held).length).toBe(held.length);
  });

  it('reads what tsrun holds from its bounding set', () => {
    expect(heldCapabilities('CapBnd:\t0000000000000003\n')).toEqual(['CAP_CHOWN', 'CAP_DAC_OVERRIDE']);
  });

  // docker's own example: `--cap-add=ALL --cap-drop=MKNOD` gives every capability but MKNOD.
  it('--cap-add ALL still honours --cap-drop', () => {
    const caps = capabilitySet(['ALL'], ['MKNOD'], false, ALL_CAPABILITIES);
    expect(caps).not.toContain('CAP_MKNOD');
    expect(caps.length).toBe(ALL_CAPABILITIES.length - 1);
  });

  it('an unknown name is a usage error with a hint', () => {
    const e = usageError(() => capabilitySet(['FLY'], [], false));
    expect(e.message).toBe('unknown capability "FLY"');
    expect(e.hint).toMatch(/capabilities\(7\)/);
    expect(usageError(() => capabilitySet([], ['cap_nope'], false)).message).toContain('cap_nope');
  });

  it('the spec carries the same set in bounding, effective and permitted, and nothing inheritable', () => {
    const s = specFromFlags(flags({ capAdd: ['SYS_ADMIN'] }), ['sh'], { id: ID });
    const c = s.process!.capabilities!;
    expect(c.bounding).toContain('CAP_SYS_ADMIN');
    expect(c.effective).toEqual(c.bounding);
    expect(c.permitted).toEqual(c.bounding);
    expect(c.inheritable).toBeUndefined();
  });
});

describe('specFromFlags', () => {
  it('hostname defaults to the first 12 characters of the id; --hostname wins', () => {
    expect(specFromFlags(flags(), ['sh'], { id: ID }).hostname).toBe('0123456789ab');
    expect(specFromFlags(flags({ hostname: 'web' }), ['sh'], { id: ID }).hostname).toBe('web');
  });

  it('command: entrypoint plus the command, or plus the image cmd when none is given', () => {
    const image = { entrypoint: ['/init'], cmd: ['serve'] };
    expect(specFromFlags(flags(), ['run', '-x'], { id: ID, image }).process!.args).toEqual(['/init', 'run', '-x']);
    expect(specFromFlags(flags(), [], { id: ID, image }).process!.args).toEqual(['/init', 'serve']);
  });

  it('no command at all is a usage error', () => {
    expect(usageError(() => specFromFlags(flags(), [], { id: ID })).message).toBe('no command given');
  });

  it('maps workdir, read-only, tty, user and ulimits', () => {
    const s = specFromFlags(flags({ workdir: '/app', readOnly: true, tty: true, user: '7:8', ulimit: ['nofile=10:20'] }), ['sh'], { id: ID, image: { workingDir: '/img' } });
    expect(s.process!.cwd).toBe('/app');
    expect(s.root).toEqual({ path: 'rootfs', readonly: true });
    expect(s.process!.terminal).toBe(true);
    expect(s.process!.user).toEqual({ uid: 7, gid: 8 });
    expect(s.process!.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', soft: 10, hard: 20 }]);
    expect(specFromFlags(flags(), ['sh'], { id: ID, image: { workingDir: '/img', user: '5' } }).process!.cwd).toBe('/img');
  });

  it('--privileged drops masked and read-only paths', () => {
    const normal = specFromFlags(flags(), ['sh'], { id: ID });
    expect(normal.linux!.maskedPaths).toContain('/proc/kcore');
    expect(normal.linux!.readonlyPaths).toContain('/proc/sys');
    const priv = specFromFlags(flags({ privileged: true }), ['sh'], { id: ID });
    expect(priv.linux!.maskedPaths).toEqual([]);
    expect(priv.linux!.readonlyPaths).toEqual([]);
  });
});

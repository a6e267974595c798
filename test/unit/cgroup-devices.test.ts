// Device access control (issue 6): the rule list, its v1 writes, the eBPF program for
// cgroup v2 (run through an interpreter of the emitted instructions, so a wrong jump or
// a wrong comparison fails here without root), --device, and the run defaults.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordingKernel } from '../../src/linux/recording.js';
import { EPERM } from '../../src/linux/errno.js';
import { TsrunError } from '../../src/errors.js';
import { makeCtl } from '../../src/cgroups/ctl.js';
import { layoutFrom } from '../../src/cgroups/detect.js';
import { cgroupManager } from '../../src/cgroups/manager.js';
import {
  DEFAULT_DEVICE_RULES, PRIVILEGED_DEVICE_RULES, RUNTIME_DEVICE_RULES, decide, normalizeDeviceRules, toSpecRule, v1Line, withRuntimeDevices, type DeviceRule,
} from '../../src/cgroups/devices/rules.js';
import { buildDeviceProgram, decodeProgram, encodeProgram, OP, runDeviceProgram } from '../../src/cgroups/devices/ebpf.js';
import { applyDevicesV1, applyDevicesV2, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_PROG_TYPE_CGROUP_DEVICE } from '../../src/cgroups/devices/apply.js';
import { parseDeviceFlag, splitDev } from '../../src/cgroups/devices/flag.js';
import { specFromFlags, type RunFlags } from '../../src/engine/run-spec.js';

const r = (allow: boolean, type: DeviceRule['type'], major: number | null, minor: number | null, access = 'rwm'): DeviceRule => ({ allow, type, major, minor, access });

/** Every combination the tests compare the program against: each type, access subset and a spread of numbers. */
const ACCESSES = ['r', 'w', 'm', 'rw', 'rm', 'wm', 'rwm'];
const NUMBERS: Array<[number, number]> = [[1, 3], [1, 5], [1, 4], [1, 9], [5, 0], [5, 1], [5, 2], [5, 3], [136, 0], [136, 77], [137, 0], [10, 200], [10, 229], [8, 0], [8, 1], [7, 0], [0, 0], [4095, 1048575]];
function matrix(f: (type: 'c' | 'b', major: number, minor: number, access: string) => void): void {
  for (const type of ['c', 'b'] as const) for (const [ma, mi] of NUMBERS) for (const a of ACCESSES) f(type, ma, mi, a);
}

describe('rules', () => {
  it('normalises the spec list: defaults, -1 wildcards and the access order', () => {
    expect(normalizeDeviceRules([{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: -1, access: 'wr' }, { allow: true, type: 'b', major: 8, access: '' }])).toEqual([
      r(false, 'a', null, null), r(true, 'c', 1, null, 'rw'), r(true, 'b', 8, null, 'rwm'),
    ]);
  });

  it('names the bad field', () => {
    const msg = (v: unknown): string => {
      try {
        normalizeDeviceRules(v);
      } catch (e) {
        expect(e).toBeInstanceOf(TsrunError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(msg([{ allow: true, type: 'x' }])).toMatch(/linux\.resources\.devices\[0\]\.type/);
    expect(msg([{ allow: true }, { allow: 'yes' }])).toMatch(/devices\[1\]\.allow/);
    expect(msg([{ allow: true, access: 'rx' }])).toMatch(/devices\[0\]\.access/);
    expect(msg([{ allow: true, major: 1.5 }])).toMatch(/devices\[0\]\.major/);
    expect(msg({})).toMatch(/must be an array/);
  });

  it('renders v1 lines and round-trips through the spec shape', () => {
    expect(DEFAULT_DEVICE_RULES.map(v1Line)).toEqual(['a', 'c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 136:* rwm', 'c 10:200 rwm']);
    expect(normalizeDeviceRules(DEFAULT_DEVICE_RULES.map(toSpecRule))).toEqual(DEFAULT_DEVICE_RULES);
  });

  it('decides like Docker: mknod of anything, open of the standard devices only', () => {
    const d = DEFAULT_DEVICE_RULES;
    expect(decide(d, 'b', 8, 0, 'm')).toBe(true);
    expect(decide(d, 'b', 8, 0, 'r')).toBe(false);
    expect(decide(d, 'c', 1, 3, 'rw')).toBe(true);
    expect(decide(d, 'c', 1, 4, 'r')).toBe(false); // /dev/port
    expect(decide(d, 'c', 136, 5, 'rw')).toBe(true);
    expect(decide(d, 'c', 10, 229, 'rw')).toBe(false); // /dev/fuse
    expect(decide(PRIVILEGED_DEVICE_RULES, 'b', 8, 0, 'rw')).toBe(true);
    expect(decide([], 'b', 8, 0, 'rw')).toBe(true);
    // an allow must cover every access asked for; a deny takes any overlap
    expect(decide([r(false, 'a', null, null), r(true, 'c', 1, 3, 'r')], 'c', 1, 3, 'rw')).toBe(false);
    expect(decide([r(false, 'c', 1, 3, 'w')], 'c', 1, 3, 'rw')).toBe(false);
    expect(decide([r(false, 'c', 1, 3, 'w')], 'c', 1, 3, 'r')).toBe(true);
  });
});

describe('the runtime\'s own default devices (config-linux.md "Default Devices")', () => {
  it('are appended to an engine\'s deny-all, so /dev/null and the ptys keep working', () => {
    const rules = withRuntimeDevices([r(false, 'a', null, null)]);
    expect(rules.slice(1)).toEqual(RUNTIME_DEVICE_RULES);
    for (const [ma, mi] of [[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 2], [136, 4]] as const) expect(decide(rules, 'c', ma, mi, 'rw')).toBe(true);
    expect(decide(rules, 'b', 8, 0, 'r')).toBe(false);
  });

  it('add nothing when the list already allows them, and come back after a later deny', () => {
    expect(withRuntimeDevices(DEFAULT_DEVICE_RULES)).toEqual(DEFAULT_DEVICE_RULES);
    expect(withRuntimeDevices(PRIVILEGED_DEVICE_RULES)).toEqual(PRIVILEGED_DEVICE_RULES);
    const denied = [r(true, 'a', null, null), r(false, 'c', 1, null, 'w'), r(false, 'c', 136, 7)];
    expect(withRuntimeDevices(denied).slice(3)).toEqual([r(true, 'c', 1, 3), r(true, 'c', 1, 5), r(true, 'c', 1, 7), r(true, 'c', 1, 8), r(true, 'c', 1, 9), r(true, 'c', 136, null)]);
    // a grant that is too narrow does not count
    expect(withRuntimeDevices([r(false, 'a', null, null), r(true, 'c', 1, 3, 'r')])).toContainEqual(r(true, 'c', 1, 3));
  });
});

describe('cgroup v1 writes', () => {
  it('writes "a" to devices.deny, then each allow line in order', () => {
    const k = new RecordingKernel();
    applyDevicesV1(makeCtl(k, '/cg/devices/tsrun/x'), DEFAULT_DEVICE_RULES);
    expect(k.writes[0]).toEqual({ path: '/cg/devices/tsrun/x/devices.deny', data: 'a' });
    expect(k.writes.slice(1).map((w) => w.path.split('/').pop())).toEqual(Array(12).fill('devices.allow'));
    expect(k.writes.slice(1).map((w) => w.data)).toEqual(DEFAULT_DEVICE_RULES.slice(1).map(v1Line));
  });

  it('starts at the last all-devices rule and sends denies to devices.deny', () => {
    const k = new RecordingKernel();
    applyDevicesV1(makeCtl(k, '/d'), [r(true, 'c', 1, 3), r(false, 'a', null, null), r(true, 'a', null, null), r(false, 'b', 8, null, 'rw')]);
    expect(k.writes).toEqual([{ path: '/d/devices.allow', data: 'a' }, { path: '/d/devices.deny', data: 'b 8:* rw' }]);
  });

  it('names the rule the kernel refused', () => {
    const k = new RecordingKernel().failOn('writeFile', EPERM, (a) => a[1] === 'c 10:200 rwm');
    let err: TsrunError | undefined;
    try {
      applyDevicesV1(makeCtl(k, '/d'), DEFAULT_DEVICE_RULES);
    } catch (e) {
      err = e as TsrunError;
    }
    expect(err).toBeInstanceOf(TsrunError);
    expect(err!.message).toMatch(/c 10:200 rwm/);
    expect(err!.hint).toMatch(/linux\.resources\.devices\[12\].*devices\.allow.*EPERM/);
  });
});

describe('eBPF device program', () => {
  it('encodes struct bpf_insn: opcode, dst in the low nibble, off, imm', () => {
    const b = encodeProgram([{ op: OP.LDX_MEM_W, dst: 4, src: 1, off: 4, imm: 0 }, { op: OP.JNE_K, dst: 3, src: 0, off: -2, imm: -1 }]);
    expect([...b]).toEqual([0x61, 0x14, 4, 0, 0, 0, 0, 0, 0x55, 0x03, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(decodeProgram(b)).toEqual([{ op: 0x61, dst: 4, src: 1, off: 4, imm: 0 }, { op: 0x55, dst: 3, src: 0, off: -2, imm: -1 }]);
  });

  const lists: Record<string, readonly DeviceRule[]> = {
    docker: DEFAULT_DEVICE_RULES,
    privileged: PRIVILEGED_DEVICE_RULES,
    'docker + --device /dev/sdb:r': [...DEFAULT_DEVICE_RULES, r(true, 'b', 8, 16, 'r')],
    'allow all but deny writes to 8:*': [r(true, 'a', null, null), r(false, 'b', 8, null, 'w')],
    'no all rule': [r(false, 'c', 1, null, 'rw'), r(true, 'c', 1, 3, 'r')],
    'type-only wildcard': [r(false, 'a', null, null), r(true, 'b', null, null, 'rwm'), r(false, 'b', null, 1, 'm')],
    'deny all, only mknod kinds': [r(false, 'a', null, null), r(true, 'a', null, null, 'm')],
    empty: [],
  };
  for (const [name, rules] of Object.entries(lists)) {
    it(`answers like the rule list for every device and access: ${name}`, () => {
      const code = encodeProgram(buildDeviceProgram(rules));
      matrix((type, major, minor, access) => {
        const got = runDeviceProgram(code, { type, major, minor, access });
        if (got !== (decide(rules, type, major, minor, access) ? 1 : 0)) {
          throw new Error(`${name}: ${type} ${major}:${minor} ${access} -> ${got}`);
        }
      });
    });
  }

  it('refuses a host disk and allows /dev/null under the defaults (the program, not the reference)', () => {
    const code = encodeProgram(buildDeviceProgram(DEFAULT_DEVICE_RULES));
    expect(runDeviceProgram(code, { type: 'b', major: 8, minor: 0, access: 'r' })).toBe(0);
    expect(runDeviceProgram(code, { type: 'b', major: 8, minor: 0, access: 'm' })).toBe(1);
    expect(runDeviceProgram(code, { type: 'c', major: 1, minor: 3, access: 'rw' })).toBe(1);
    expect(runDeviceProgram(code, { type: 'c', major: 1, minor: 1, access: 'r' })).toBe(0); // /dev/mem
  });

  it('stops emitting at a rule that matches everything, and ends every path in exit', () => {
    const prog = buildDeviceProgram(DEFAULT_DEVICE_RULES);
    // the deny-all is first in the list, so it is the program's last block: mov r0, 0; exit
    expect(prog.slice(-2)).toEqual([{ op: OP.MOV64_K, dst: 0, src: 0, off: 0, imm: 0 }, { op: OP.EXIT, dst: 0, src: 0, off: 0, imm: 0 }]);
    expect(buildDeviceProgram(PRIVILEGED_DEVICE_RULES).slice(6)).toEqual([{ op: OP.MOV64_K, dst: 0, src: 0, off: 0, imm: 1 }, { op: OP.EXIT, dst: 0, src: 0, off: 0, imm: 0 }]);
    // every jump lands inside the program
    prog.forEach((p, i) => {
      if (p.op === OP.JEQ_K || p.op === OP.JNE_K) expect(i + 1 + p.off).toBeLessThan(prog.length);
    });
  });

  it('the interpreter rejects what it does not understand (so it can catch emitter bugs)', () => {
    const bad = encodeProgram([{ op: 0x07, dst: 0, src: 0, off: 0, imm: 1 }]);
    expect(() => runDeviceProgram(bad, { type: 'c', major: 1, minor: 3, access: 'r' })).toThrow(/opcode 0x7/);
    const unset = encodeProgram([{ op: OP.EXIT, dst: 0, src: 0, off: 0, imm: 0 }]);
    expect(() => runDeviceProgram(unset, { type: 'c', major: 1, minor: 3, access: 'r' })).toThrow(/unset register r0/);
    const out = encodeProgram([{ op: OP.JNE_K, dst: 1, src: 0, off: 5, imm: 7 }]);
    expect(() => runDeviceProgram(out, { type: 'c', major: 1, minor: 3, access: 'r' })).toThrow(/outside the program/);
  });

  it('loads the program as CGROUP_DEVICE and attaches it with ALLOW_MULTI to the cgroup dir, closing both fds', () => {
    const k = new RecordingKernel();
    applyDevicesV2(k, '/sys/fs/cgroup/tsrun/x', DEFAULT_DEVICE_RULES);
    expect(k.methods()).toEqual(['bpfProgLoad', 'open', 'bpfProgAttach', 'close', 'close']);
    const [type, insns, license] = k.callsOf('bpfProgLoad')[0]!.args as [number, Buffer, string];
    expect(type).toBe(BPF_PROG_TYPE_CGROUP_DEVICE);
    expect(license).not.toBe('GPL');
    expect(runDeviceProgram(insns, { type: 'b', major: 8, minor: 0, access: 'r' })).toBe(0);
    const [dirFd, progFd] = k.callsOf('close').map((c) => c.args[0] as number);
    expect(k.pathOf(dirFd!)).toBe('/sys/fs/cgroup/tsrun/x');
    expect(k.pathOf(progFd!)).toBe(`bpf-prog:${BPF_PROG_TYPE_CGROUP_DEVICE}`);
    expect(k.callsOf('open')[0]!.args[1]).toBe(0o2000000 | 0o200000); // O_CLOEXEC|O_DIRECTORY, read-only
    expect(k.callsOf('bpfProgAttach')[0]!.args).toEqual([dirFd, progFd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI]);
    expect(k.openFds()).toEqual([]);
  });

  it('reports a refused load as a tsrun error with a hint, and leaves no fd behind', () => {
    const k = new RecordingKernel().failOn('bpfProgAttach', EPERM);
    expect(() => applyDevicesV2(k, '/cg/x', DEFAULT_DEVICE_RULES)).toThrow(/cannot attach the device access filter/);
    expect(k.openFds()).toEqual([]);
  });
});

describe('--device', () => {
  const fake = (type: 'c' | 'b' | 'f', rdev: bigint) => () => ({
    isCharacterDevice: () => type === 'c', isBlockDevice: () => type === 'b', rdev, mode: 0o20660n, uid: 0n, gid: 6n,
  });

  it('splits a dev_t as glibc does', () => {
    expect(splitDev(0x0803n)).toEqual({ major: 8, minor: 3 });
    // glibc's makedev: major bits 0-11 at 8, the rest at 32; minor bits 0-7 at 0, the rest at 12
    const makedev = (ma: bigint, mi: bigint): bigint => ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
    expect(splitDev(makedev(0x123abcn, 0x678045n))).toEqual({ major: 0x123abc, minor: 0x678045 });
    expect(splitDev(makedev(259n, 1048575n))).toEqual({ major: 259, minor: 1048575 });
  });

  it('reads the host node and keeps its mode and group; the container path and permissions are optional', () => {
    expect(parseDeviceFlag('/dev/loop-control', fake('c', (10n << 8n) | 237n))).toEqual({
      device: { type: 'c', path: '/dev/loop-control', major: 10, minor: 237, fileMode: 0o660, uid: 0, gid: 6 },
      rule: { allow: true, type: 'c', major: 10, minor: 237, access: 'rwm' },
    });
    expect(parseDeviceFlag('/dev/sdb:/dev/xvdc:wr', fake('b', (8n << 8n) | 16n))).toMatchObject({ device: { type: 'b', path: '/dev/xvdc' }, rule: { access: 'rw' } });
    expect(parseDeviceFlag('/dev/sdb:r', fake('b', (8n << 8n) | 16n))).toMatchObject({ device: { path: '/dev/sdb' }, rule: { access: 'r' } });
  });

  it('refuses what is not a device, bad permissions and relative paths', () => {
    expect(() => parseDeviceFlag('/etc/passwd', fake('f', 0n))).toThrow(/not a character or block device/);
    expect(() => parseDeviceFlag('/dev/sdb:/x:rx', fake('b', 0n))).toThrow(/permissions "rx"/);
    expect(() => parseDeviceFlag('dev/sdb', fake('b', 0n))).toThrow(/absolute/);
    expect(() => parseDeviceFlag('/nonexistent-device-xyz')).toThrow(/cannot stat.*ENOENT/);
  });
});

describe('run defaults', () => {
  const flags = (more: Partial<RunFlags> = {}): RunFlags => ({
    env: [], envFile: [], interactive: false, tty: false, readOnly: false, volume: [], tmpfs: [], capAdd: [], capDrop: [], ulimit: [], privileged: false, ...more,
  });
  const rulesOf = (f: RunFlags): DeviceRule[] => normalizeDeviceRules(specFromFlags(f, ['true'], { id: 'x' }).linux!.resources!.devices);

  it('Docker\'s allowlist by default, everything with --privileged', () => {
    expect(rulesOf(flags())).toEqual(DEFAULT_DEVICE_RULES);
    expect(rulesOf(flags({ privileged: true }))).toEqual(PRIVILEGED_DEVICE_RULES);
  });

  it('--device adds the node and its rule after the defaults', () => {
    const spec = specFromFlags(flags({ device: ['/dev/null:/dev/mynull:r'] }), ['true'], { id: 'x' });
    expect(spec.linux!.devices).toEqual([expect.objectContaining({ type: 'c', path: '/dev/mynull', major: 1, minor: 3 })]);
    expect(normalizeDeviceRules(spec.linux!.resources!.devices).at(-1)).toEqual(r(true, 'c', 1, 3, 'r'));
  });
});

describe('manager', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'tsrun-devices-unit-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('hybrid host: a devices cgroup is created, joined by the setup thread, written, and removed', () => {
    const lines = ['memory', 'devices'].map((c, i) => {
      mkdirSync(join(root, c));
      return `${30 + i} 25 0:${30 + i} / ${join(root, c)} rw - cgroup cgroup rw,${c}`;
    });
    mkdirSync(join(root, 'unified'));
    const layout = layoutFrom([...lines, `40 25 0:40 / ${join(root, 'unified')} rw - cgroup2 cgroup2 rw`].join('\n') + '\n', () => 'hugetlb');
    const k = new RecordingKernel();
    const m = cgroupManager(k, 'tsrun/c1', layout);
    const dev = join(root, 'devices', 'tsrun', 'c1');
    expect(m.dirs()).toContain(dev);
    expect(m.threadFiles()).toContain(join(dev, 'tasks'));
    m.create();
    m.apply({ devices: DEFAULT_DEVICE_RULES.map(toSpecRule) });
    expect(k.writes.filter((w) => w.path.startsWith(dev)).map((w) => `${w.path.slice(dev.length + 1)} ${w.data}`).slice(0, 2)).toEqual(['devices.deny a', 'devices.allow c *:* m']);
    // `tsrun update` without devices leaves the rules alone
    const n = k.writes.length;
    m.apply({});
    expect(k.writes.length).toBe(n);
    m.destroy();
    expect(m.exists()).toBe(false);
  });

  it('pure v2 host: the rules become an eBPF program attached to the container\'s cgroup', () => {
    const uni = join(root, 'unified');
    mkdirSync(uni);
    const layout = layoutFrom(`30 25 0:26 / ${uni} rw - cgroup2 cgroup2 rw\n`, () => 'cpu memory pids');
    const k = new RecordingKernel();
    cgroupManager(k, 'tsrun/c2', layout).apply({ devices: DEFAULT_DEVICE_RULES.map(toSpecRule) });
    expect(k.methods()).toEqual(['bpfProgLoad', 'open', 'bpfProgAttach', 'close', 'close']);
    expect(k.callsOf('open')[0]!.args[0]).toBe(join(uni, 'tsrun', 'c2'));
  });
});

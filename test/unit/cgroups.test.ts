// cgroup managers against fixture directories (youki's approach): the manager is
// pointed at a temp dir laid out like cgroupfs. Writes go through a fake Kernel that,
// like cgroupfs, refuses to create a missing file, so a wrong file name fails here.
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordingKernel } from '../../src/linux/recording.js';
import { KernelError } from '../../src/linux/kernel.js';
import { ENOENT } from '../../src/linux/errno.js';

const EBUSY = 16; // errno.ts names it but exports no constant
import { TsrunError } from '../../src/errors.js';
import { layoutFrom, type CgroupLayout } from '../../src/cgroups/detect.js';
import { cgroupManager, defaultCgroupsPath, sweepEmptyCgroups } from '../../src/cgroups/manager.js';
import { relativeCgroupPath } from '../../src/cgroups/ctl.js';
import { blkioWeightToIoWeight, sharesToWeight, swapToV2 } from '../../src/cgroups/convert.js';
import { parseBytes, resourcesFromFlags } from '../../src/cgroups/flags.js';
import { binarySize, decimalSize, statsRow } from '../../src/cli/cgroup-verbs.js';

/** A Kernel whose writeFile writes only files that exist, and whose kill empties the pid from every cgroup.procs. */
class FixtureKernel extends RecordingKernel {
  constructor(private readonly root: string) {
    super();
  }
  override writeFile(path: string, data: string, why?: string): void {
    super.writeFile(path, data, why);
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch {
      throw new KernelError('write', ENOENT, JSON.stringify(path));
    }
    ftruncateSync(fd);
    writeSync(fd, data);
    closeSync(fd);
  }
  override kill(pid: number, signal: number, why?: string): void {
    super.kill(pid, signal, why);
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name === 'cgroup.procs') {
          writeFileSync(p, readFileSync(p, 'utf8').split('\n').filter((l) => l.trim() && Number(l) !== pid).join('\n'));
        }
      }
    };
    walk(this.root);
  }
}

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tsrun-cgroup-unit-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function files(dir: string, f: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(f)) writeFileSync(join(dir, name), text);
}
const read = (p: string): string => readFileSync(join(root, p), 'utf8');

const V2_LEAF = {
  'cgroup.procs': '', 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.kill': '', 'cgroup.freeze': '0',
  'cgroup.controllers': 'cpuset cpu io memory pids', 'cgroup.subtree_control': '',
  'memory.max': 'max', 'memory.low': '0', 'memory.swap.max': 'max', 'memory.current': '1048576',
  'memory.stat': 'anon 1000\nfile 2000\ninactive_file 4096\n', 'memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n',
  'cpu.max': 'max 100000', 'cpu.weight': '100', 'cpu.stat': 'usage_usec 2500\nuser_usec 2000\n',
  'cpuset.cpus': '', 'cpuset.mems': '', 'pids.max': 'max', 'pids.current': '3',
  'io.weight': 'default 100', 'io.max': '', 'io.stat': '8:0 rbytes=100 wbytes=200 rios=1 wios=2\n254:0 rbytes=1 wbytes=2\n',
};

function v2Layout(): CgroupLayout {
  const mount = join(root, 'unified');
  files(mount, { 'cgroup.controllers': 'cpuset cpu io memory pids hugetlb', 'cgroup.subtree_control': 'cpu' });
  return layoutFrom(`30 25 0:26 / ${mount} rw - cgroup2 cgroup2 rw,nsdelegate\n`, (m) => readFileSync(join(m, 'cgroup.controllers'), 'utf8'));
}

const V1_FILES: Record<string, Record<string, string>> = {
  memory: {
    'cgroup.procs': '', tasks: '', 'memory.limit_in_bytes': '9223372036854771712', 'memory.memsw.limit_in_bytes': '9223372036854771712',
    'memory.soft_limit_in_bytes': '9223372036854771712', 'memory.usage_in_bytes': '2097152', 'memory.swappiness': '60',
    'memory.stat': 'cache 0\ntotal_inactive_file 8192\n', 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
  },
  cpu: { 'cgroup.procs': '', tasks: '', 'cpu.shares': '1024', 'cpu.cfs_quota_us': '-1', 'cpu.cfs_period_us': '100000' },
  cpuacct: { 'cgroup.procs': '', tasks: '', 'cpuacct.usage': '123456789' },
  cpuset: { 'cgroup.procs': '', tasks: '', 'cpuset.cpus': '', 'cpuset.mems': '' },
  pids: { 'cgroup.procs': '', tasks: '', 'pids.max': 'max', 'pids.current': '4' },
  blkio: {
    'cgroup.procs': '', tasks: '', 'blkio.bfq.weight': '100', 'blkio.throttle.read_bps_device': '', 'blkio.throttle.write_bps_device': '',
    'blkio.throttle.read_iops_device': '', 'blkio.throttle.write_iops_device': '',
    'blkio.throttle.io_service_bytes_recursive': '254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\nTotal 12288\n',
  },
  freezer: { 'cgroup.procs': '', tasks: '', 'freezer.state': 'THAWED' },
};

/** This host's own layout: v1 controllers plus a cgroup2 with only hugetlb. */
function hybridLayout(): CgroupLayout {
  const lines: string[] = [];
  let id = 30;
  for (const c of Object.keys(V1_FILES)) {
    const mount = join(root, c);
    files(mount, c === 'cpuset' ? { 'cpuset.cpus': '0-1', 'cpuset.mems': '0' } : {});
    lines.push(`${id++} 25 0:${id} / ${mount} rw,relatime shared:9 - cgroup cgroup rw,${c}`);
  }
  const uni = join(root, 'unified');
  files(uni, { 'cgroup.controllers': 'hugetlb' });
  lines.push(`${id} 25 0:40 / ${uni} rw,relatime - cgroup2 cgroup2 rw`);
  lines.push(`${id + 1} 25 0:41 / ${join(root, 'systemd')} rw - cgroup cgroup rw,xattr,name=systemd`);
  return layoutFrom(lines.join('\n') + '\n', (m) => readFileSync(join(m, 'cgroup.controllers'), 'utf8'));
}

function v1Leaf(rel: string): void {
  for (const [c, f] of Object.entries(V1_FILES)) files(join(root, c, rel), f);
}

describe('detection', () => {
  it('tells pure v2, hybrid and pure v1 apart and picks a version per controller', () => {
    const v2 = v2Layout();
    expect(v2.mode).toBe('v2');
    expect(v2.choice).toEqual({ cpu: 'v2', cpuset: 'v2', memory: 'v2', pids: 'v2', io: 'v2', freezer: 'v2' });

    const hy = hybridLayout();
    expect(hy.mode).toBe('hybrid');
    expect(hy.v2?.controllers).toEqual(['hugetlb']);
    // Never refused: every controller comes from v1, and name=systemd is no controller.
    expect(hy.choice).toEqual({ cpu: 'v1', cpuset: 'v1', memory: 'v1', pids: 'v1', io: 'v1', freezer: 'v1' });
    expect(hy.v1.systemd).toBeUndefined();

    const v1only = layoutFrom('40 25 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n41 25 0:34 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n', () => '');
    expect(v1only.mode).toBe('v1');
    expect(v1only.v1.cpuacct).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(v1only.choice.cpu).toBe('v1');
    expect(v1only.choice.pids).toBeNull();
  });

  it('uses v2 for the controllers a hybrid cgroup2 holds, v1 for the rest', () => {
    const uni = join(root, 'unified');
    files(uni, { 'cgroup.controllers': 'memory pids' });
    const l = layoutFrom(
      `30 25 0:26 / ${uni} rw - cgroup2 cgroup2 rw\n31 25 0:27 / ${join(root, 'cpu')} rw - cgroup cgroup rw,cpu,cpuacct\n`,
      (m) => readFileSync(join(m, 'cgroup.controllers'), 'utf8'),
    );
    expect(l.mode).toBe('hybrid');
    expect(l.choice.memory).toBe('v2');
    expect(l.choice.pids).toBe('v2');
    expect(l.choice.cpu).toBe('v1');
    expect(cgroupManager(new FixtureKernel(root), 'tsrun/x', l).version).toBe('hybrid');
  });
});

describe('conversions and docker flags', () => {
  it('maps shares to weight and blkio weight to io.weight like runc', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
  });

  it('turns memory+swap into v2 swap-only and checks it', () => {
    expect(swapToV2(-1, 100)).toBe('max');
    expect(swapToV2(300, 100)).toBe('200');
    expect(swapToV2(undefined, 100)).toBeNull();
    expect(() => swapToV2(50, 100)).toThrow(/at least the memory limit/);
    expect(() => swapToV2(50, undefined)).toThrow(/needs a memory limit/);
  });

  it('parses docker sizes and flags', () => {
    expect(parseBytes('--memory', '512m')).toBe(512 * 1024 * 1024);
    expect(parseBytes('--memory', '1g')).toBe(1024 ** 3);
    expect(parseBytes('--memory', '1.5k')).toBe(1536);
    expect(parseBytes('--memory', '100')).toBe(100);
    expect(() => parseBytes('--memory', '12x')).toThrow(/--memory/);
    const r = resourcesFromFlags({ memory: '64m', cpus: '0.5', pidsLimit: '0', cpuShares: '512', cpusetCpus: '0' })!;
    // docker: swap defaults to as much as memory again; --cpus is over a 100 ms period.
    expect(r.memory).toEqual({ limit: 64 << 20, swap: 128 << 20 });
    expect(r.cpu).toEqual({ period: 100000, quota: 50000, shares: 512, cpus: '0' });
    expect(r.pids).toEqual({ limit: -1 });
    expect(resourcesFromFlags({ memory: '64m' }, true)!.memory).toEqual({ limit: 64 << 20 });
    expect(resourcesFromFlags({})).toBeUndefined();
    expect(() => resourcesFromFlags({ cpus: '1', cpuQuota: '1000' })).toThrow(/conflicts/);
    expect(() => resourcesFromFlags({ memory: '1m' })).toThrow(/minimum is 6MB/);
    expect(() => resourcesFromFlags({ memory: '64m', memorySwap: '32m' })).toThrow(/--memory-swap/);
    expect(() => resourcesFromFlags({ blkioWeight: '5' })).toThrow(/--blkio-weight/);
    expect(() => resourcesFromFlags({ deviceReadBps: ['/etc/passwd:1mb'] })).toThrow(/not a block device/);
  });

  it('names cgroup paths safely', () => {
    expect(relativeCgroupPath('/a/b/')).toBe('a/b');
    expect(() => relativeCgroupPath('a/../../etc')).toThrow(/\.\./);
    expect(() => relativeCgroupPath('system.slice:tsrun:abc')).toThrow(/systemd/);
    expect(defaultCgroupsPath('abc', {})).toBe('tsrun/abc');
    expect(defaultCgroupsPath('abc', { TSRUN_CGROUP_PARENT: '/mine/' })).toBe('mine/abc');
  });
});

describe('v2 manager', () => {
  it('delegates controllers up the tree, writes each limit to its file, and reads stats', () => {
    const layout = v2Layout();
    files(join(root, 'unified/tsrun'), { 'cgroup.controllers': 'cpuset cpu io memory pids', 'cgroup.subtree_control': 'memory' });
    files(join(root, 'unified/tsrun/c1'), V2_LEAF);
    const k = new FixtureKernel(root);
    const m = cgroupManager(k, 'tsrun/c1', layout);
    expect(m.version).toBe('v2');
    m.create();
    // Only what is missing is written, top-down; the leaf delegates nothing.
    expect(k.writes.map((w) => [w.path.slice(root.length), w.data])).toEqual([
      ['/unified/cgroup.subtree_control', '+cpuset +memory +pids +io'],
      ['/unified/tsrun/cgroup.subtree_control', '+cpu +cpuset +pids +io'],
    ]);
    m.apply({
      memory: { limit: 64 << 20, swap: 96 << 20, reservation: 32 << 20 },
      cpu: { quota: 50000, period: 100000, shares: 1024, cpus: '0', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1048576 }], throttleWriteIOPSDevice: [{ major: 254, minor: 0, rate: 100 }] },
    });
    const leaf = 'unified/tsrun/c1/';
    expect(read(leaf + 'memory.max')).toBe(String(64 << 20));
    expect(read(leaf + 'memory.swap.max')).toBe(String(32 << 20));
    expect(read(leaf + 'memory.low')).toBe(String(32 << 20));
    expect(read(leaf + 'cpu.max')).toBe('50000 100000');
    expect(read(leaf + 'cpu.weight')).toBe('39');
    expect(read(leaf + 'cpuset.cpus')).toBe('0');
    expect(read(leaf + 'pids.max')).toBe('20');
    expect(read(leaf + 'io.weight')).toBe(`default ${blkioWeightToIoWeight(500)}`);
    const ioMax = k.writes.filter((w) => w.path.endsWith('io.max')).map((w) => w.data);
    expect(ioMax).toEqual(['254:0 rbps=1048576', '254:0 wiops=100']);

    m.addProcess(777);
    expect(read(leaf + 'cgroup.procs')).toBe('777');
    expect(m.stats()).toMatchObject({
      cpuUsageNs: 2_500_000, memoryUsage: 1048576, memoryInactiveFile: 4096, memoryLimit: 64 << 20,
      pidsCurrent: 3, pidsLimit: 20, blkioRead: 101, blkioWrite: 202, oomKills: 1,
    });
    expect(m.oomKills()).toBe(1);
  });

  it('keeps the other half of cpu.max on update', () => {
    const layout = v2Layout();
    files(join(root, 'unified/tsrun/c1'), { ...V2_LEAF, 'cpu.max': '20000 50000' });
    const m = cgroupManager(new FixtureKernel(root), 'tsrun/c1', layout);
    m.apply({ cpu: { period: 100000 } });
    expect(read('unified/tsrun/c1/cpu.max')).toBe('20000 100000');
  });

  it('names the flag when a file is missing, and never creates it', () => {
    const layout = v2Layout();
    const { 'memory.swap.max': _gone, ...noSwap } = V2_LEAF;
    files(join(root, 'unified/tsrun/c1'), noSwap);
    const m = cgroupManager(new FixtureKernel(root), 'tsrun/c1', layout);
    let err: unknown;
    try {
      m.apply({ memory: { limit: 64 << 20, swap: 128 << 20 } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsrunError);
    expect((err as TsrunError).message).toMatch(/--memory-swap/);
    expect((err as TsrunError).hint).toMatch(/linux\.resources\.memory\.swap/);
    expect(existsSync(join(root, 'unified/tsrun/c1/memory.swap.max'))).toBe(false);
  });

  it('explains the no-internal-processes rule, and removes what it made', () => {
    const layout = v2Layout();
    files(join(root, 'unified/busy'), { 'cgroup.controllers': 'cpuset cpu io memory pids', 'cgroup.subtree_control': '', 'cgroup.procs': '1\n' });
    const k = new FixtureKernel(root).failOn('writeFile', EBUSY, (a) => String(a[0]).endsWith('busy/cgroup.subtree_control'));
    const m = cgroupManager(k, 'busy/c1', layout);
    expect(() => m.create()).toThrow(/no-internal-processes/);
    expect(existsSync(join(root, 'unified/busy/c1'))).toBe(false);
  });

  it('kills with cgroup.kill and removes the cgroup', () => {
    const layout = v2Layout();
    files(join(root, 'unified/tsrun/c1'), V2_LEAF);
    const k = new FixtureKernel(root);
    const m = cgroupManager(k, 'tsrun/c1', layout);
    m.kill();
    expect(k.writes.at(-1)).toEqual({ path: join(root, 'unified/tsrun/c1/cgroup.kill'), data: '1' });
    // rmdir on a real cgroup ignores its interface files; a fixture dir needs emptying.
    for (const f of Object.keys(V2_LEAF)) rmSync(join(root, 'unified/tsrun/c1', f));
    m.destroy();
    expect(existsSync(join(root, 'unified/tsrun/c1'))).toBe(false);
    expect(existsSync(join(root, 'unified/tsrun'))).toBe(true);
  });
});

describe('v1 manager (hybrid host)', () => {
  it('creates the path in every hierarchy, copies cpuset from the parent, and exposes per-thread tasks files', () => {
    const layout = hybridLayout();
    const k = new FixtureKernel(root);
    // The parent exists (made by an earlier container); the leaf is a fixture.
    files(join(root, 'cpuset/tsrun'), { 'cpuset.cpus': '0-1', 'cpuset.mems': '0' });
    v1Leaf('tsrun/c1');
    const m = cgroupManager(k, 'tsrun/c1', layout);
    expect(m.version).toBe('v1');
    m.create();
    expect(read('cpuset/tsrun/c1/cpuset.cpus')).toBe('0-1');
    expect(read('cpuset/tsrun/c1/cpuset.mems')).toBe('0');
    expect(m.threadFiles().sort()).toEqual(Object.keys(V1_FILES).map((c) => join(root, c, 'tsrun/c1/tasks')).sort());
  });

  it('writes the v1 files, memsw before the limit when raising', () => {
    const layout = hybridLayout();
    v1Leaf('tsrun/c1');
    writeFileSync(join(root, 'memory/tsrun/c1/memory.memsw.limit_in_bytes'), String(64 << 20));
    writeFileSync(join(root, 'memory/tsrun/c1/memory.limit_in_bytes'), String(64 << 20));
    const k = new FixtureKernel(root);
    const m = cgroupManager(k, 'tsrun/c1', layout);
    m.apply({
      memory: { limit: 128 << 20, swap: 256 << 20, reservation: 64 << 20 },
      cpu: { quota: 50000, period: 100000, shares: 512, cpus: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 300, throttleWriteBpsDevice: [{ major: 254, minor: 0, rate: 4096 }] },
    });
    const order = k.writes.map((w) => w.path.slice(root.length + 1));
    expect(order.indexOf('memory/tsrun/c1/memory.memsw.limit_in_bytes')).toBeLessThan(order.indexOf('memory/tsrun/c1/memory.limit_in_bytes'));
    expect(order.indexOf('cpu/tsrun/c1/cpu.cfs_period_us')).toBeLessThan(order.indexOf('cpu/tsrun/c1/cpu.cfs_quota_us'));
    expect(read('memory/tsrun/c1/memory.limit_in_bytes')).toBe(String(128 << 20));
    expect(read('memory/tsrun/c1/memory.memsw.limit_in_bytes')).toBe(String(256 << 20));
    expect(read('memory/tsrun/c1/memory.soft_limit_in_bytes')).toBe(String(64 << 20));
    expect(read('cpu/tsrun/c1/cpu.cfs_quota_us')).toBe('50000');
    expect(read('cpu/tsrun/c1/cpu.shares')).toBe('512');
    expect(read('cpuset/tsrun/c1/cpuset.cpus')).toBe('0');
    expect(read('pids/tsrun/c1/pids.max')).toBe('20');
    // No blkio.weight on a kernel without CFQ: BFQ's file takes the same scale.
    expect(read('blkio/tsrun/c1/blkio.bfq.weight')).toBe('300');
    expect(read('blkio/tsrun/c1/blkio.throttle.write_bps_device')).toBe('254:0 4096');
  });

  it('writes the limit before memsw when lowering', () => {
    const layout = hybridLayout();
    v1Leaf('tsrun/c1');
    writeFileSync(join(root, 'memory/tsrun/c1/memory.memsw.limit_in_bytes'), String(512 << 20));
    const k = new FixtureKernel(root);
    cgroupManager(k, 'tsrun/c1', layout).apply({ memory: { limit: 64 << 20, swap: 128 << 20 } });
    expect(k.writes.map((w) => w.path.split('/').pop())).toEqual(['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']);
  });

  it('reads stats and OOM kills from the v1 files', () => {
    const layout = hybridLayout();
    v1Leaf('tsrun/c1');
    const m = cgroupManager(new FixtureKernel(root), 'tsrun/c1', layout);
    expect(m.stats()).toEqual({
      cpuUsageNs: 123456789, memoryUsage: 2097152, memoryInactiveFile: 8192, memoryLimit: null,
      pidsCurrent: 4, pidsLimit: null, blkioRead: 4096, blkioWrite: 8192, oomKills: 2,
    });
    expect(m.oomKills()).toBe(2);
  });

  it('freezes, kills every pid, thaws, and never kills tsrun itself', () => {
    const layout = hybridLayout();
    v1Leaf('tsrun/c1');
    for (const c of Object.keys(V1_FILES)) writeFileSync(join(root, c, 'tsrun/c1/cgroup.procs'), '101\n102\n');
    const k = new FixtureKernel(root);
    const m = cgroupManager(k, 'tsrun/c1', layout);
    m.kill();
    const seq = k.calls.filter((c) => c.method === 'kill' || (c.method === 'writeFile' && String(c.args[0]).endsWith('freezer.state')));
    expect(seq.map((c) => (c.method === 'kill' ? `kill ${c.args[0]}` : `freezer ${c.args[1]}`))).toEqual(['freezer FROZEN', 'kill 101', 'kill 102', 'freezer THAWED']);
    expect(m.pids()).toEqual([]);

    // A setup thread of tsrun in the cgroup: no freeze (it would stop tsrun), and tsrun is spared.
    for (const c of Object.keys(V1_FILES)) writeFileSync(join(root, c, 'tsrun/c1/cgroup.procs'), `${process.pid}\n103\n`);
    const k2 = new FixtureKernel(root);
    cgroupManager(k2, 'tsrun/c1', layout).kill();
    expect(k2.callsOf('kill').map((c) => c.args[0])).toEqual([103]);
    expect(k2.writes.some((w) => w.path.endsWith('freezer.state'))).toBe(false);
  });
});

describe('sweeping stale cgroups', () => {
  it('removes empty container cgroups under the parent and keeps any with a process', () => {
    const layout = hybridLayout();
    v1Leaf('tsrun/dead');
    v1Leaf('tsrun/live');
    writeFileSync(join(root, 'pids/tsrun/live/cgroup.procs'), '4242\n');
    // Fixture dirs hold regular files that a real cgroup's rmdir would ignore.
    for (const [c, f] of Object.entries(V1_FILES)) for (const name of Object.keys(f)) rmSync(join(root, c, 'tsrun/dead', name));
    const k = new FixtureKernel(root);
    expect(sweepEmptyCgroups(k, 60_000, layout, 'tsrun')).toEqual([]); // too young
    expect(sweepEmptyCgroups(k, 0, layout, 'tsrun')).toEqual(['tsrun/dead']);
    for (const c of Object.keys(V1_FILES)) {
      expect(existsSync(join(root, c, 'tsrun/dead'))).toBe(false);
      expect(existsSync(join(root, c, 'tsrun/live'))).toBe(true);
    }
  });
});

describe('stats formatting', () => {
  it('computes docker\'s columns from two samples', () => {
    const base = { cpuUsageNs: 0, memoryUsage: 0, memoryInactiveFile: 0, memoryLimit: 64 << 20, pidsCurrent: 0, pidsLimit: null, blkioRead: 0, blkioWrite: 0, oomKills: 0 };
    const s = { id: 'abcdef0123456789', status: 'running' as const, bundle: '/', rootfs: '/', created: '' };
    const row = statsRow(s, base, { ...base, cpuUsageNs: 5e8, memoryUsage: 17 << 20, memoryInactiveFile: 1 << 20, pidsCurrent: 5, blkioRead: 1500, blkioWrite: 2_500_000 }, 1e9);
    expect(row.CPUPerc).toBe('50.00%');
    expect(row.MemUsage).toBe('16MiB / 64MiB');
    expect(row.MemPerc).toBe('25.00%');
    expect(row.PIDs).toBe('5');
    expect(row.BlockIO).toBe('1.5kB / 2.5MB');
    expect(row.ID).toBe('abcdef012345');
    expect(binarySize(1536)).toBe('1.5KiB');
    expect(decimalSize(999)).toBe('999B');
  });
});

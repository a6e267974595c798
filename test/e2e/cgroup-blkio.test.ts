// Block I/O limits for real: --blkio-weight and the four --device-*-bps/iops throttles
// are set by bin/tsrun and then observed, in the container's cgroup files and in what a
// process in the container can do to a block device within a bounded interval.
//
// The block device is a loop device over a 64 MiB file in this file's own temp dir,
// attached once for the file and always detached at the end. Every read and write uses
// O_DIRECT: buffered I/O would be served from (or absorbed by) the page cache, and the
// throttle only sees bios that reach the device (blk-throttle sits in the block layer).
//
// Runs on whatever this kernel has: v1 blkio here (hybrid host), the v2 io controller in
// ../shared/tools/cgroup2-vm (where JavaScript is 10-20x slower: TSRUN_E2E_SLOW scales
// the waits). A kernel without loop devices or an io/blkio controller skips the file and
// says why.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { blkioWeightToIoWeight } from '../../src/cgroups/convert.js';
import { expectExit, useSandbox } from '../helpers/sandbox.js';
import { waitForOutput } from '../helpers/tsrun.js';
import { TempDirs } from '../helpers/tempdirs.js';
import { sleep, until } from '../helpers/wait.js';
import { cgroupLayout, runningContainer, newCgroupParent, removeCgroupParent } from '../helpers/cgroups.js';

const SLOW = Number(process.env.TSRUN_E2E_SLOW ?? 1);
const T = (ms: number): number => ms * SLOW;
const KiB = 1024;
const MiB = 1024 * KiB;
const DISK_SIZE = 64 * MiB;
// util-linux's, by path: busybox's losetup (first in the cgroup2 VM's PATH) has no --show
const LOSETUP = ['/usr/sbin/losetup', '/sbin/losetup'].find((p) => existsSync(p)) ?? 'losetup';
const layout = cgroupLayout;
const V2 = layout.choice.io === 'v2';
/** Where the container's io/blkio cgroup files are, seen from inside (its cgroup namespace). */
const INSIDE = V2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/blkio';

/** Why this kernel cannot run the file, or null. Read from the kernel, not assumed. */
function skipReason(): string | null {
  if (layout.choice.io === null) return `no io controller: cgroup2 controllers [${layout.v2?.controllers.join(' ') ?? 'no cgroup2 mount'}], no v1 blkio hierarchy`;
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control: this kernel has no loop driver';
  return null;
}
const SKIP = skipReason();
if (SKIP) console.log(`cgroup-blkio.test.ts skipped: ${SKIP}`);

/** The host directory of a cgroup (relative path) in the hierarchy serving io. */
function ioDir(rel: string): string {
  return join(V2 ? layout.v2!.mount : layout.v1.blkio!, rel);
}

/** The bytes (and ops) the cgroup's own stats file counts for one device. */
function ioStatFor(dir: string, dev: string): { rbytes: number; wbytes: number } {
  if (V2) {
    const line = readFileSync(join(dir, 'io.stat'), 'utf8').split('\n').find((l) => l.startsWith(`${dev} `)) ?? '';
    const get = (k: string): number => Number(new RegExp(`\\b${k}=(\\d+)`).exec(line)?.[1] ?? 0);
    return { rbytes: get('rbytes'), wbytes: get('wbytes') };
  }
  const text = readFileSync(join(dir, 'blkio.throttle.io_service_bytes_recursive'), 'utf8');
  const get = (op: string): number => Number(new RegExp(`^${dev} ${op} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { rbytes: get('Read'), wbytes: get('Write') };
}

/** Bytes read, over all devices, as the cgroup's stats file counts them. */
function totalRead(dir: string): number {
  let n = 0;
  if (V2) {
    for (const m of readFileSync(join(dir, 'io.stat'), 'utf8').matchAll(/\brbytes=(\d+)/g)) n += Number(m[1]);
  } else {
    for (const m of readFileSync(join(dir, 'blkio.throttle.io_service_bytes_recursive'), 'utf8').matchAll(/^\d+:\d+ Read (\d+)$/gm)) n += Number(m[1]);
  }
  return n;
}

/** docker's decimal size text ("2.1MB") back to bytes. */
function decimalBytes(text: string): number {
  const m = /^([\d.]+)(B|kB|MB|GB|TB)$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[m[2] as 'B']!;
}

describe.skipIf(SKIP !== null)(`block I/O limits (${V2 ? 'cgroup v2 io' : 'v1 blkio'})`, () => {
  const sb = useSandbox();
  const temps = new TempDirs();
  let backing = '';
  let loop = '';
  let dev = ''; // "MAJ:MIN"
  let schedFile = '';
  let schedBefore = '';

  beforeAll(() => {
    backing = join(temps.make('blkio'), 'disk.img');
    writeFileSync(backing, '');
    ftruncateFile(backing, DISK_SIZE);
    loop = execFileSync(LOSETUP, ['-f', '--show', backing], { encoding: 'utf8' }).trim();
    const rdev = statSync(loop).rdev;
    dev = `${(rdev >> 8) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`;
    // BFQ is the scheduler that honours a per-cgroup weight (CFQ is gone since 5.0), and
    // on v2 its io.bfq.weight file exists only once the bfq module is loaded, which
    // selecting it on a device does. The device is ours until afterAll, which restores it.
    schedFile = `/sys/block/${basename(loop)}/queue/scheduler`;
    const sched = existsSync(schedFile) ? readFileSync(schedFile, 'utf8') : '';
    schedBefore = /\[(\S+)\]/.exec(sched)?.[1] ?? '';
    if (/\bbfq\b/.test(sched) && schedBefore !== 'bfq') writeFileSync(schedFile, 'bfq');
  });

  afterAll(() => {
    try {
      if (loop && schedBefore && schedBefore !== 'bfq' && existsSync(schedFile)) writeFileSync(schedFile, schedBefore);
    } finally {
      try {
        if (loop) execFileSync(LOSETUP, ['-d', loop]);
      } finally {
        expect(temps.removeAll(), 'temp dirs that could not be removed').toEqual([]);
      }
    }
    // A leaked loop device is a leak: nothing may still be attached to our file.
    expect(execFileSync(LOSETUP, ['-j', backing], { encoding: 'utf8' }).trim()).toBe('');
  });

  function ftruncateFile(path: string, size: number): void {
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
  }

  /** Fills the device's backing file with 0xff, so the blocks a container writes (zeros) can be counted. */
  function fillBacking(): void {
    const fd = openSync(backing, 'r+');
    try {
      const chunk = Buffer.alloc(MiB, 0xff);
      for (let off = 0; off < DISK_SIZE; off += MiB) writeSync(fd, chunk, 0, MiB, off);
    } finally {
      closeSync(fd);
    }
  }

  /** How many 4 KiB blocks of the backing file a container zeroed. */
  function zeroedBlocks(): number {
    const data = readFileSync(backing);
    const zero = Buffer.alloc(4 * KiB);
    let n = 0;
    for (let off = 0; off < data.length; off += zero.length) if (data.subarray(off, off + zero.length).equals(zero)) n++;
    return n;
  }

  let parent = '';
  const opts = (): { env: Record<string, string>; timeoutMs: number } => ({ env: { TSRUN_CGROUP_PARENT: parent }, timeoutMs: T(30_000) });

  beforeEach(() => {
    parent = newCgroupParent();
  });

  afterEach(() => {
    expect(removeCgroupParent(parent), 'cgroups left behind').toEqual([]);
  });

  const runningState = (sub: { exitCode: number | null }) => runningContainer(sb.root, sub, T(15_000));

  /**
   * Ends a container that waits for /tmp/go, whatever the test did: a failed assertion
   * must not leave it (and its cgroups) running. It exits by itself once the file
   * exists; SIGTERM to tsrun only if it did not.
   */
  async function release(sub: ReturnType<typeof sb.spawn>, rootfs: string): Promise<void> {
    const go = join(rootfs, 'tmp', 'go');
    if (!existsSync(go)) writeFileSync(go, '');
    const timer = setTimeout(() => sub.pid && process.kill(sub.pid, 'SIGTERM'), T(10_000));
    await sub;
    clearTimeout(timer);
  }

  /** The weight file tsrun is expected to use in this cgroup dir, and its text for weight w. */
  function weightFile(dir: string, w: number): { file: string; text: string } {
    if (V2) {
      // BFQ's own file takes blkio's 1..1000 scale; io.weight (blk-iocost) its 1..10000 one.
      if (existsSync(join(dir, 'io.bfq.weight'))) return { file: 'io.bfq.weight', text: `default ${w}` };
      return { file: 'io.weight', text: `default ${blkioWeightToIoWeight(w)}` };
    }
    return existsSync(join(dir, 'blkio.weight')) ? { file: 'blkio.weight', text: String(w) } : { file: 'blkio.bfq.weight', text: String(w) };
  }

  it('--blkio-weight 300 is in the container\'s cgroup (host and inside), and update changes it live', async (ctx) => {
    const probe = ioDir(parent);
    // Which weight file the kernel offers shows only in a non-root cgroup: look in one
    // of this test's own before deciding whether the kernel has any.
    const files = V2 ? ['io.bfq.weight', 'io.weight'] : ['blkio.weight', 'blkio.bfq.weight'];
    mkdirSync(probe);
    const has = files.filter((f) => existsSync(join(probe, f)));
    rmdirSync(probe);
    if (!has.length) ctx.skip(`a new cgroup here has none of ${files.join(', ')} (no BFQ and no blk-iocost in this kernel)`);

    const rootfs = sb.rootfs();
    const sub = sb.spawn(['run', '--rootfs', rootfs, '--blkio-weight', '300', '--', 'sh', '-c',
      `cat ${INSIDE}/${has[0]}; echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; cat ${INSIDE}/${has[0]}`], opts());
    // Listen before anything is awaited: output that arrives earlier would be missed.
    const ready = waitForOutput(sub, /ready\n/, T(15_000));
    ready.catch(() => undefined); // awaited below; an earlier failure must not leave it unhandled
    try {
      const s = await runningState(sub);
      const dir = ioDir(s.cgroupsPath);
      const w300 = weightFile(dir, 300);
      expect(w300.file).toBe(has[0]);
      await ready;
      expect(readFileSync(join(dir, w300.file), 'utf8').trim()).toBe(w300.text);

      const u = await sb.tsrun(['update', '--blkio-weight', '500', s.id.slice(0, 12)], opts());
      expectExit(u, 0);
      expect(u.stdout).toBe(`${s.id.slice(0, 12)}\n`);
      const w500 = weightFile(dir, 500);
      expect(readFileSync(join(dir, w500.file), 'utf8').trim()).toBe(w500.text);
      writeFileSync(join(rootfs, 'tmp', 'go'), '');
      const r = await sub;
      expectExit(r, 0);
      expect(r.stdout).toBe(`${w300.text}\nready\n${w500.text}\n`);
    } finally {
      await release(sub, rootfs);
    }
  }, T(60_000));

  /**
   * Runs `CMD` in a container with `--device LOOP` plus `flags`, printing first the
   * container's view of its throttle settings (v1 file or v2 io.max line for our device).
   */
  async function inContainer(flags: string[], cmd: string, throttleFile: string): Promise<{ settings: string; out: string }> {
    const show = V2 ? `grep "^${dev} " ${INSIDE}/io.max; echo ---` : `cat ${INSIDE}/${throttleFile}; echo ---`;
    const r = await sb.run(['sh', '-c', `${show}; ${cmd}`], ['--device', loop, ...flags], opts());
    expectExit(r, 0);
    const [settings, out] = r.stdout.split('---\n') as [string, string];
    return { settings: settings.trim(), out: out.trim() };
  }

  // The throttle lets a cgroup run ahead by at most a slice or so (100 ms) and may carry a
  // little budget over: 3 s at 1 MiB/s is 3 MiB, so 4.5 MiB is a generous ceiling; the
  // floor (1 MiB) shows the container could use the device at all.
  const WINDOW = 3;

  it('--device-read-bps 1mb: a 3 s direct read gets at most ~3 MiB; without it the same read gets far more', async () => {
    const read = `timeout ${WINDOW} dd if=${loop} bs=64k iflag=direct 2>/dev/null | wc -c`;
    const limited = await inContainer(['--device-read-bps', `${loop}:1mb`], read, 'blkio.throttle.read_bps_device');
    expect(limited.settings).toBe(V2 ? `${dev} rbps=${MiB} wbps=max riops=max wiops=max` : `${dev} ${MiB}`);
    const got = Number(limited.out);
    expect(got, `bytes read in ${WINDOW} s at 1 MiB/s`).toBeLessThanOrEqual(4.5 * MiB);
    expect(got).toBeGreaterThanOrEqual(1 * MiB);

    const free = await inContainer([], read, 'blkio.throttle.read_bps_device');
    expect(free.settings).toBe('');
    expect(Number(free.out), `bytes read in ${WINDOW} s without a limit`).toBeGreaterThanOrEqual(16 * MiB);
  }, T(90_000));

  it('--device-write-bps 1mb: a 3 s direct write puts at most ~3 MiB on the device; without it, far more', async () => {
    const write = `timeout ${WINDOW} dd if=/dev/zero of=${loop} bs=64k oflag=direct 2>/dev/null; echo done`;
    fillBacking();
    const limited = await inContainer(['--device-write-bps', `${loop}:1mb`], write, 'blkio.throttle.write_bps_device');
    expect(limited.settings).toBe(V2 ? `${dev} rbps=max wbps=${MiB} riops=max wiops=max` : `${dev} ${MiB}`);
    const got = zeroedBlocks() * 4 * KiB;
    expect(got, `bytes written in ${WINDOW} s at 1 MiB/s`).toBeLessThanOrEqual(4.5 * MiB);
    expect(got).toBeGreaterThanOrEqual(1 * MiB);

    fillBacking();
    await inContainer([], write, 'blkio.throttle.write_bps_device');
    expect(zeroedBlocks() * 4 * KiB, `bytes written in ${WINDOW} s without a limit`).toBeGreaterThanOrEqual(16 * MiB);
  }, T(90_000));

  // 20 operations a second for 3 s is 60; 100 leaves room for the slice and carry-over.
  it('--device-read-iops 20: a 3 s direct read of 4 KiB blocks does at most ~60 reads; without it, far more', async () => {
    const read = `timeout ${WINDOW} dd if=${loop} bs=4k iflag=direct 2>/dev/null | wc -c`;
    const limited = await inContainer(['--device-read-iops', `${loop}:20`], read, 'blkio.throttle.read_iops_device');
    expect(limited.settings).toBe(V2 ? `${dev} rbps=max wbps=max riops=20 wiops=max` : `${dev} 20`);
    const ops = Number(limited.out) / (4 * KiB);
    expect(ops, `reads in ${WINDOW} s at 20/s`).toBeLessThanOrEqual(100);
    expect(ops).toBeGreaterThanOrEqual(20);

    const free = await inContainer([], read, 'blkio.throttle.read_iops_device');
    expect(Number(free.out) / (4 * KiB), `reads in ${WINDOW} s without a limit`).toBeGreaterThanOrEqual(400);
  }, T(90_000));

  it('--device-write-iops 20: a 3 s direct write of 4 KiB blocks does at most ~60 writes; without it, far more', async () => {
    const write = `timeout ${WINDOW} dd if=/dev/zero of=${loop} bs=4k oflag=direct 2>/dev/null; echo done`;
    fillBacking();
    const limited = await inContainer(['--device-write-iops', `${loop}:20`], write, 'blkio.throttle.write_iops_device');
    expect(limited.settings).toBe(V2 ? `${dev} rbps=max wbps=max riops=max wiops=20` : `${dev} 20`);
    const ops = zeroedBlocks();
    expect(ops, `writes in ${WINDOW} s at 20/s`).toBeLessThanOrEqual(100);
    expect(ops).toBeGreaterThanOrEqual(20);

    fillBacking();
    await inContainer([], write, 'blkio.throttle.write_iops_device');
    expect(zeroedBlocks(), `writes in ${WINDOW} s without a limit`).toBeGreaterThanOrEqual(400);
  }, T(90_000));

  it('update changes a throttle live, and a rate of 0 lifts it (v1 reads 0 as no limit; v2 is written max)', async () => {
    const rootfs = sb.rootfs();
    const show = V2 ? `grep "^${dev} " ${INSIDE}/io.max` : `cat ${INSIDE}/blkio.throttle.read_bps_device`;
    const sub = sb.spawn(['run', '--rootfs', rootfs, '--device', loop, '--device-read-bps', `${loop}:1mb`, '--', 'sh', '-c',
      `${show}; echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; ${show}; echo ---; timeout ${WINDOW} dd if=${loop} bs=64k iflag=direct 2>/dev/null | wc -c`], opts());
    const ready = waitForOutput(sub, /ready\n/, T(15_000));
    ready.catch(() => undefined); // awaited below; an earlier failure must not leave it unhandled
    try {
      const s = await runningState(sub);
      await ready;
      const file = join(ioDir(s.cgroupsPath), V2 ? 'io.max' : 'blkio.throttle.read_bps_device');
      const line = (): string => readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${dev} `)) ?? '';
      expect(line()).toBe(V2 ? `${dev} rbps=${MiB} wbps=max riops=max wiops=max` : `${dev} ${MiB}`);

      const u2 = await sb.tsrun(['update', '--device-read-bps', `${loop}:2mb`, s.id.slice(0, 12)], opts());
      expectExit(u2, 0);
      expect(line()).toBe(V2 ? `${dev} rbps=${2 * MiB} wbps=max riops=max wiops=max` : `${dev} ${2 * MiB}`);
      const u0 = await sb.tsrun(['update', '--device-read-bps', `${loop}:0`, s.id.slice(0, 12)], opts());
      expectExit(u0, 0);
      // With every limit of a device lifted, the kernel drops its line from the file.
      expect(line()).toBe('');

      writeFileSync(join(rootfs, 'tmp', 'go'), '');
      const r = await sub;
      expectExit(r, 0);
      const [before, after, bytes] = String(r.stdout).split(/ready\n|---\n/) as [string, string, string];
      expect(before.trim()).toBe(V2 ? `${dev} rbps=${MiB} wbps=max riops=max wiops=max` : `${dev} ${MiB}`);
      expect(after.trim()).toBe('');
      expect(Number(bytes), `bytes read in ${WINDOW} s after the limit was lifted`).toBeGreaterThanOrEqual(16 * MiB);
    } finally {
      await release(sub, rootfs);
    }
  }, T(90_000));

  it('the bytes a container reads show in its cgroup\'s io stats and in tsrun stats BlockIO', async () => {
    const rootfs = sb.rootfs();
    const sub = sb.spawn(['run', '--rootfs', rootfs, '--device', loop, '--', 'sh', '-c',
      `dd if=${loop} of=/dev/null bs=64k count=32 iflag=direct 2>/dev/null && echo read; while [ ! -e /tmp/go ]; do sleep 0.05; done`], opts());
    const done = waitForOutput(sub, /read\n/, T(15_000));
    done.catch(() => undefined); // awaited below; an earlier failure must not leave it unhandled
    try {
      const s = await runningState(sub);
      await done;
      const dir = ioDir(s.cgroupsPath);
      expect(ioStatFor(dir, dev)).toEqual({ rbytes: 32 * 64 * KiB, wbytes: 0 });

      const r = await sb.tsrun(['stats', '--no-stream', '--format', 'json', s.id], opts());
      expectExit(r, 0);
      const after = totalRead(dir);
      const row = JSON.parse(r.stdout.trim()) as { BlockIO: string; Cgroup: { blkioRead: number; blkioWrite: number } };
      // Other devices (the rootfs's disk) may add reads of their own, never fewer.
      expect(row.Cgroup.blkioRead).toBeGreaterThanOrEqual(2 * MiB);
      expect(row.Cgroup.blkioRead).toBeLessThanOrEqual(after);
      const [readText, writeText] = row.BlockIO.split(' / ') as [string, string];
      // docker's column: decimal units, three significant digits.
      expect(Math.abs(decimalBytes(readText) - row.Cgroup.blkioRead)).toBeLessThanOrEqual(row.Cgroup.blkioRead * 0.01);
      expect(decimalBytes(writeText)).toBeLessThanOrEqual(row.Cgroup.blkioWrite * 1.01);
      writeFileSync(join(rootfs, 'tmp', 'go'), '');
      expectExit(await sub, 0);
    } finally {
      await release(sub, rootfs);
    }
  }, T(60_000));

  it('a path that is not a block device, or a bad rate or weight, is refused with exit 125 naming the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--device-read-bps', '/etc/hostname:1mb'], /--device-read-bps \/etc\/hostname: not a block device/],
      [['--device-write-bps', '/dev/null:1mb'], /--device-write-bps \/dev\/null: not a block device/],
      [['--device-read-iops', '/nonexistent/disk:10'], /--device-read-iops \/nonexistent\/disk: ENOENT/],
      [['--device-read-bps', `${loop}:fast`], /invalid --device-read-bps value "fast"/],
      [['--device-write-iops', `${loop}:-5`], /invalid --device-write-iops value "-5"/],
      [['--device-write-bps', loop], /invalid --device-write-bps value/],
      [['--blkio-weight', '5'], /invalid --blkio-weight value "5": the range is 10 to 1000/],
    ];
    for (const [flags, re] of cases) {
      const r = await sb.run(['true'], flags, opts());
      expectExit(r, 125);
      expect(r.stderr, flags.join(' ')).toMatch(re);
    }
    const u = await sb.tsrun(['update', '--blkio-weight', '2000', 'nosuch'], opts());
    expectExit(u, 125);
    expect(u.stderr).toMatch(/--blkio-weight/);
  }, T(60_000));
});

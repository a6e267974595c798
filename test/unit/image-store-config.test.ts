// Image config -> run defaults, user resolution through the layers, overlay options.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageDefaults, lookupInLayers, readFromLayers, resolveUser } from '../../src/image/config.js';
import { needsNewMountApi, overlayOptions } from '../../src/overlay/mount.js';
import { selectPlatform } from '../../src/image/pull.js';
import { parseChallenge } from '../../src/image/auth.js';

describe('imageDefaults: docker\'s Entrypoint/Cmd rules', () => {
  const cfg = { config: { Entrypoint: ['/bin/ep'], Cmd: ['default'], Env: ['A=1'], WorkingDir: '/w', User: 'user' } };
  it('uses Entrypoint + Cmd when nothing is given', () => {
    const d = imageDefaults(cfg, { command: [] });
    expect([...d.entrypoint, ...d.cmd]).toEqual(['/bin/ep', 'default']);
    expect(d).toMatchObject({ env: ['A=1'], workingDir: '/w', user: 'user' });
  });
  it('a command replaces Cmd, not Entrypoint', () => {
    const d = imageDefaults(cfg, { command: ['x', 'y'] });
    expect([...d.entrypoint, ...d.cmd]).toEqual(['/bin/ep', 'x', 'y']);
  });
  it('--entrypoint replaces Entrypoint and drops the image Cmd', () => {
    const d = imageDefaults(cfg, { entrypoint: '/bin/other', command: [] });
    expect([...d.entrypoint, ...d.cmd]).toEqual(['/bin/other']);
    const d2 = imageDefaults(cfg, { entrypoint: '/bin/other', command: ['arg'] });
    expect([...d2.entrypoint, ...d2.cmd]).toEqual(['/bin/other', 'arg']);
  });
  it('--entrypoint "" clears it', () => {
    const d = imageDefaults(cfg, { entrypoint: '', command: ['echo', 'hi'] });
    expect([...d.entrypoint, ...d.cmd]).toEqual(['echo', 'hi']);
  });
  it('null Entrypoint/Cmd in the config are empty', () => {
    const d = imageDefaults({ config: { Entrypoint: null, Cmd: null } }, { command: [] });
    expect([...d.entrypoint, ...d.cmd]).toEqual([]);
  });
});

describe('resolveUser', () => {
  const files = {
    passwd: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbad:x::1::/:/bin/sh\n',
    group: 'root:x:0:\nwheel:x:10:app,other\naudio:x:29:app\napp:x:1000:\nstaff:x:50:\n',
  };
  it('resolves a name to uid, primary gid, supplementary groups and HOME', () => {
    expect(resolveUser('app', files)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app' });
  });
  it('a numeric uid with a passwd entry takes its gid; without one, gid 0', () => {
    expect(resolveUser('1000', files)).toMatchObject({ uid: 1000, gid: 1000 });
    expect(resolveUser('4242', files)).toEqual({ uid: 4242, gid: 0, additionalGids: [] });
  });
  it('user:group by name or number', () => {
    expect(resolveUser('app:staff', files)).toMatchObject({ uid: 1000, gid: 50 });
    expect(resolveUser('1000:7', files)).toMatchObject({ uid: 1000, gid: 7 });
  });
  it('unknown names are clear errors', () => {
    expect(() => resolveUser('ghost', files)).toThrow(/unable to find user ghost/);
    expect(() => resolveUser('app:ghosts', files)).toThrow(/unable to find group ghosts/);
    expect(() => resolveUser('app', { passwd: null, group: null })).toThrow(/unable to find user app/);
  });
});

describe('lookupInLayers: the merged view without a mount', () => {
  let d: string;
  let top: string;
  let mid: string;
  let bottom: string;
  let outside: string;
  beforeEach(() => {
    d = mkdtempSync(join(tmpdir(), 'tsrun-layers-'));
    [top, mid, bottom, outside] = ['top', 'mid', 'bottom', 'outside'].map((n) => join(d, n)) as [string, string, string, string];
    for (const l of [top, mid, bottom, outside]) mkdirSync(join(l, 'etc'), { recursive: true });
    writeFileSync(join(outside, 'etc/passwd'), 'HOST SECRET\n');
  });
  afterEach(() => rmSync(d, { recursive: true, force: true }));

  it('takes the topmost copy', () => {
    writeFileSync(join(bottom, 'etc/passwd'), 'bottom');
    writeFileSync(join(mid, 'etc/passwd'), 'mid');
    expect(readFromLayers([top, mid, bottom], 'etc/passwd')).toBe('mid');
  });

  it('a whiteout (0/0 char device) hides the lower copy', () => {
    writeFileSync(join(bottom, 'etc/passwd'), 'bottom');
    try {
      execFileSync('mknod', [join(mid, 'etc/passwd'), 'c', '0', '0'], { stdio: 'ignore' });
    } catch {
      return; // not root: mknod of a device needs CAP_MKNOD
    }
    expect(lookupInLayers([top, mid, bottom], 'etc/passwd')).toBeNull();
  });

  it('a file in an upper layer hides a directory below', () => {
    mkdirSync(join(bottom, 'etc/sub'), { recursive: true });
    writeFileSync(join(bottom, 'etc/sub/f'), 'x');
    writeFileSync(join(top, 'etc/sub'), 'now a file');
    expect(lookupInLayers([top, bottom], 'etc/sub/f')).toBeNull();
  });

  it('resolves symlinks inside the image root, never the host\'s', () => {
    // absolute and relative links that would escape are clamped to the image's root
    symlinkSync(`${outside}/etc/passwd`, join(top, 'etc/passwd'));
    expect(readFromLayers([top, bottom], 'etc/passwd')).toBeNull();
    rmSync(join(top, 'etc/passwd'));
    symlinkSync('../../../../../../outside/etc/passwd', join(top, 'etc/passwd'));
    expect(readFromLayers([top, bottom], 'etc/passwd')).toBeNull();
    // a link within the image works, across layers
    rmSync(join(top, 'etc/passwd'));
    mkdirSync(join(bottom, 'data'));
    writeFileSync(join(bottom, 'data/pw'), 'inside');
    symlinkSync('/data/pw', join(top, 'etc/passwd'));
    expect(readFromLayers([top, bottom], 'etc/passwd')).toBe('inside');
    // a directory symlink in a lower layer is followed inside the image too
    rmSync(join(top, 'etc'), { recursive: true });
    rmSync(join(bottom, 'etc'), { recursive: true });
    symlinkSync('/data', join(bottom, 'etc'));
    writeFileSync(join(bottom, 'data/passwd'), 'via dir link');
    expect(readFromLayers([top, bottom], 'etc/passwd')).toBe('via dir link');
  });

  it('a symlink loop is an error, not a hang', () => {
    symlinkSync('/etc/b', join(top, 'etc/a'));
    symlinkSync('/etc/a', join(top, 'etc/b'));
    expect(() => lookupInLayers([top], 'etc/a')).toThrow(/too many symlinks/);
  });
});

describe('overlay options', () => {
  it('uses the classic string while it fits in a page, the new API beyond', () => {
    const few = { lower: ['/var/lib/tsrun/layers/' + 'a'.repeat(64)], upper: '/u', work: '/w' };
    expect(overlayOptions(few)).toBe(`lowerdir=${few.lower[0]},upperdir=/u,workdir=/w`);
    expect(needsNewMountApi(few)).toBe(false);
    const many = { ...few, lower: Array.from({ length: 50 }, (_, i) => `/var/lib/tsrun/layers/${String(i).padStart(64, '0')}`) };
    expect(needsNewMountApi(many)).toBe(true);
  });
});

describe('selectPlatform', () => {
  const m = (architecture: string, variant?: string): { mediaType: string; digest: string; size: number; platform: { os: string; architecture: string; variant?: string } } =>
    ({ mediaType: 'x', digest: `${architecture}${variant ?? ''}`, size: 1, platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) } });
  const idx = [m('amd64'), m('arm', 'v6'), m('arm', 'v7'), m('arm64', 'v8')];
  it('matches os, architecture and variant', () => {
    expect(selectPlatform(idx, { os: 'linux', architecture: 'arm', variant: 'v7' }, true).digest).toBe('armv7');
    expect(selectPlatform(idx, { os: 'linux', architecture: 'arm64' }, true).digest).toBe('arm64v8');
    expect(selectPlatform(idx, { os: 'linux', architecture: 'amd64' }, false).digest).toBe('amd64');
  });
  it('names the available platforms when none matches', () => {
    expect(() => selectPlatform(idx, { os: 'linux', architecture: 's390x' }, true)).toThrow(/no image for platform linux\/s390x/);
    expect(() => selectPlatform(idx, { os: 'linux', architecture: 'arm', variant: 'v5' }, true)).toThrow(/linux\/arm\/v5/);
  });
});

describe('parseChallenge', () => {
  it('reads a Bearer challenge', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual({
      scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="x"').scheme).toBe('basic');
  });
});

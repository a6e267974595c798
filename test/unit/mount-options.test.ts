import { describe, expect, it } from 'vitest';
import { MS } from '../../src/linux/constants.js';
import { parseMountOptions, PROPAGATION } from '../../src/rootfs/options.js';

describe('parseMountOptions', () => {
  it('turns flag options into MS_* bits and keeps filesystem data apart', () => {
    const o = parseMountOptions(['nosuid', 'noexec', 'nodev', 'mode=755', 'size=65536k', 'strictatime']);
    expect(o.flags).toBe(MS.MS_NOSUID | MS.MS_NOEXEC | MS.MS_NODEV | MS.MS_STRICTATIME);
    expect(o.data).toEqual(['mode=755', 'size=65536k']);
    expect(o.bind).toBe('none');
    expect(o.readonly).toBe(false);
    expect(o.propagation).toEqual([]);
  });

  it('later clearing options undo earlier ones (rw after ro)', () => {
    expect(parseMountOptions(['ro', 'rw']).flags).toBe(0);
    expect(parseMountOptions(['ro', 'rw']).readonly).toBe(false);
    expect(parseMountOptions(['rw', 'ro']).readonly).toBe(true);
    expect(parseMountOptions(['noexec', 'exec', 'nosuid']).flags).toBe(MS.MS_NOSUID);
    expect(parseMountOptions(['noatime', 'atime']).flags).toBe(0);
  });

  it('bind and rbind: rbind wins whatever the order', () => {
    expect(parseMountOptions(['bind']).bind).toBe('bind');
    expect(parseMountOptions(['rbind']).bind).toBe('rbind');
    expect(parseMountOptions(['rbind', 'bind']).bind).toBe('rbind');
    expect(parseMountOptions(['bind', 'rbind']).bind).toBe('rbind');
    expect(parseMountOptions(['bind']).flags).toBe(0);
  });

  it('collects propagation changes in order, as separate calls', () => {
    const o = parseMountOptions(['rbind', 'rprivate', 'ro', 'shared']);
    expect(o.propagation).toEqual([MS.MS_PRIVATE | MS.MS_REC, MS.MS_SHARED]);
    expect(o.flags).toBe(MS.MS_RDONLY);
    expect(PROPAGATION.rslave).toBe(MS.MS_SLAVE | MS.MS_REC);
    expect(PROPAGATION.unbindable).toBe(MS.MS_UNBINDABLE);
  });

  it('ignores defaults and the options tsrun does not map to flags', () => {
    const o = parseMountOptions(['defaults', 'tmpcopyup', 'idmap', 'ridmap']);
    expect(o).toEqual({ flags: 0, propagation: [], data: [], bind: 'none', readonly: false });
  });

  it('accepts no options at all', () => {
    expect(parseMountOptions(undefined)).toEqual({ flags: 0, propagation: [], data: [], bind: 'none', readonly: false });
  });
});

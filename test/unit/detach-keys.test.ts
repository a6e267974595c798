// docker's --detach-keys: parsing, and the scanner that holds back a possible sequence.
import { describe, expect, it } from 'vitest';
import { DetachScanner, parseDetachKeys } from '../../src/engine/monitor/detach-keys.js';

describe('detach keys', () => {
  it('parses ctrl-<x> and single characters', () => {
    expect([...parseDetachKeys('ctrl-p,ctrl-q')]).toEqual([16, 17]);
    expect([...parseDetachKeys('ctrl-@,ctrl-[,ctrl-_,a')]).toEqual([0, 27, 31, 97]);
    expect(() => parseDetachKeys('ctrl-1')).toThrow(/invalid detach key/);
    expect(() => parseDetachKeys('abc')).toThrow(/invalid detach key/);
  });

  it('detaches on the sequence, across chunks, and passes a broken-off prefix on whole', () => {
    const s = new DetachScanner(parseDetachKeys('ctrl-p,ctrl-q'));
    expect(s.feed(Buffer.from('ab\x10'))).toEqual({ out: Buffer.from('ab'), detached: false });
    expect(s.feed(Buffer.from('x'))).toEqual({ out: Buffer.from('\x10x'), detached: false });
    expect(s.feed(Buffer.from('\x10\x10'))).toEqual({ out: Buffer.from('\x10'), detached: false });
    expect(s.feed(Buffer.from('\x11rest'))).toEqual({ out: Buffer.alloc(0), detached: true });
    const one = new DetachScanner(parseDetachKeys('ctrl-x'));
    expect(one.feed(Buffer.from('hi\x18'))).toEqual({ out: Buffer.from('hi'), detached: true });
  });
});

import { describe, expect, it } from 'vitest';
import { TsrunError } from '../../src/errors.js';
import { familiarName, formatReference, parseReference } from '../../src/image/reference.js';

const D = 'sha256:' + 'ab'.repeat(32);

describe('parseReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['user/app', 'docker.io/user/app:latest'],
    ['ghcr.io/org/app:1.2', 'ghcr.io/org/app:1.2'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/x', 'localhost:5000/x:latest'],
    [`localhost:5000/x@${D}`, `localhost:5000/x@${D}`],
    [`busybox:1.36@${D}`, `docker.io/library/busybox:1.36@${D}`],
    ['127.0.0.1:5000/a/b/c:v_1.0-rc', '127.0.0.1:5000/a/b/c:v_1.0-rc'],
    ['my-reg.example.com/a__b/c.d-e:TAG', 'my-reg.example.com/a__b/c.d-e:TAG'],
  ])('%s -> %s', (input, want) => {
    expect(formatReference(parseReference(input))).toBe(want);
  });

  it('keeps tag and digest apart', () => {
    expect(parseReference(`localhost:5000/x:t@${D}`)).toEqual({ registry: 'localhost:5000', repository: 'x', tag: 't', digest: D });
    expect(parseReference(`x@${D}`).tag).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['busybox:', /bad tag/],
    ['busybox:-x', /bad tag/],
    [`busybox:${'a'.repeat(129)}`, /bad tag/],
    ['busybox@sha256:abc', /64 lowercase hex/],
    ['busybox@md5:' + 'a'.repeat(32), /only sha256/],
    ['a//b', /empty path component/],
    ['a/b_-c', /bad path component/],
    ['-a/b', /bad path component/],
    ['foo bar', /bad (path component|tag)/],
    ['host:99999999999x/a', /bad registry host|bad tag/],
    [':tag', /no repository/],
  ])('rejects %j with a clear error (exit 125)', (input, re) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsrunError);
    expect((err as TsrunError).message).toMatch(re);
    expect((err as TsrunError).exitCode).toBe(125);
    expect((err as TsrunError).hint).toMatch(/NAME\[:TAG\]/);
  });

  it('familiarName drops docker.io/library/ like docker does', () => {
    expect(familiarName(parseReference('busybox'))).toBe('busybox');
    expect(familiarName(parseReference('user/app'))).toBe('user/app');
    expect(familiarName(parseReference('localhost:5000/app'))).toBe('localhost:5000/app');
  });
});

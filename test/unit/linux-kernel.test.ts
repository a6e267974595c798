// The real kernel, through koffi, on calls that fail the same way with or without root:
// the error must carry the syscall, the errno by name and what it was called on.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLONE, O, RESOLVE } from '../../src/linux/constants.js';
import { KernelError } from '../../src/linux/kernel.js';
import { LinuxKernel } from '../../src/linux/libc.js';

const k = new LinuxKernel();
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsrun-unit-kernel-'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'file'), 'x');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function kernelError(f: () => unknown): KernelError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KernelError);
    return e as KernelError;
  }
  throw new Error('expected the call to fail');
}

describe('LinuxKernel errors', () => {
  it('open of a missing path: ENOENT, with the quoted path and the flags by name', () => {
    const path = join(dir, 'missing');
    const e = kernelError(() => k.open(path, O.O_RDONLY | O.O_CLOEXEC));
    expect(e.syscall).toBe('open');
    expect(e.code).toBe('ENOENT');
    expect(e.errno).toBe(2);
    expect(e.message).toBe(`open("${path}", O_RDONLY|O_CLOEXEC): ENOENT (no such file or directory)`);
  });

  it('setns on a bad fd: EBADF, with the namespace type by name', () => {
    const e = kernelError(() => k.setns(987654, CLONE.CLONE_NEWNET));
    expect(e.code).toBe('EBADF');
    expect(e.message).toMatch(/^setns\(987654, CLONE_NEWNET\): EBADF/);
  });

  it('mkdirat of an existing directory: EEXIST relative to the dirfd', () => {
    const fd = k.open(dir, O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC);
    try {
      const e = kernelError(() => k.mkdirat(fd, 'sub', 0o755));
      expect(e.code).toBe('EEXIST');
      expect(e.message).toContain(`mkdirat(${fd}, "sub", 0755)`);
    } finally {
      k.close(fd);
    }
  });

  it('openat2 RESOLVE_IN_ROOT treats the dirfd as / for absolute paths and ..', () => {
    const fd = k.open(dir, O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC);
    try {
      // "/file" and "../../file" both resolve to <dir>/file, not the host's
      for (const p of ['/file', '../../file', 'sub/../file']) {
        const f = k.openat2(fd, p, O.O_PATH | O.O_CLOEXEC, 0, RESOLVE.RESOLVE_IN_ROOT);
        try {
          expect(k.statFd(f), p).toBe('file');
        } finally {
          k.close(f);
        }
      }
      const e = kernelError(() => k.openat2(fd, '/etc/passwd', O.O_PATH | O.O_CLOEXEC, 0, RESOLVE.RESOLVE_IN_ROOT));
      expect(e.code).toBe('ENOENT');
      expect(e.message).toContain('"/etc/passwd", O_RDONLY|O_CLOEXEC|O_PATH, RESOLVE_IN_ROOT');
    } finally {
      k.close(fd);
    }
  });

  it('statFd tells directories from files, and fails on a bad fd', () => {
    const d = k.open(join(dir, 'sub'), O.O_PATH | O.O_CLOEXEC);
    try {
      expect(k.statFd(d)).toBe('dir');
    } finally {
      k.close(d);
    }
    const e = kernelError(() => k.statFd(987654));
    expect(e.code).toBe('EBADF');
    expect(e.syscall).toBe('fstat');
  });

  it('writeFile to a missing kernel file: the path and the data in the error', () => {
    const path = join(dir, 'no-such-dir', 'pids.max');
    const e = kernelError(() => k.writeFile(path, '10'));
    expect(e.code).toBe('ENOENT');
    expect(e.message).toBe(`write("${path}", "10"): ENOENT (no such file or directory)`);
  });

  it('kill of a pid that cannot exist: ESRCH', () => {
    const e = kernelError(() => k.kill(0x3fffffff, 0));
    expect(e.code).toBe('ESRCH');
  });
});

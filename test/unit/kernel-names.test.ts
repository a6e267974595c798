// Errors and traces name flags, errnos and paths the way people read them.
import { describe, expect, it } from 'vitest';
import { CLONE, MNT, MS, O, RESOLVE, flagNames, openFlagNames } from '../../src/linux/constants.js';
import { EACCES, EINVAL, ENOENT, EPERM, errnoMessage, errnoName } from '../../src/linux/errno.js';
import { KernelError, quote } from '../../src/linux/kernel.js';
import { TsrunError, wrap } from '../../src/errors.js';

describe('flagNames', () => {
  it('names every known bit, in table order', () => {
    expect(flagNames(MS.MS_BIND | MS.MS_REC, MS)).toBe('MS_BIND|MS_REC');
    expect(flagNames(MS.MS_REC | MS.MS_PRIVATE, MS)).toBe('MS_REC|MS_PRIVATE');
    expect(flagNames(CLONE.CLONE_NEWNS | CLONE.CLONE_NEWPID | CLONE.CLONE_NEWNET, CLONE)).toBe('CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET');
    expect(flagNames(MNT.MNT_DETACH, MNT)).toBe('MNT_DETACH');
    expect(flagNames(RESOLVE.RESOLVE_IN_ROOT | RESOLVE.RESOLVE_NO_MAGICLINKS, RESOLVE)).toBe('RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT');
  });

  it('prints 0 for no flags and unknown bits in hex', () => {
    expect(flagNames(0, MS)).toBe('0');
    expect(flagNames(MS.MS_RDONLY | 0x200, MS)).toBe('MS_RDONLY|0x200');
    expect(flagNames(0x80000000, CLONE)).toBe('0x80000000');
  });

  it('a bit is named once even when two names share it', () => {
    const t = { A: 1, B: 1, C: 2 };
    expect(flagNames(3, t)).toBe('A|C');
  });
});

describe('openFlagNames', () => {
  it('names the access mode, which is not a bit', () => {
    expect(openFlagNames(O.O_RDONLY)).toBe('O_RDONLY');
    expect(openFlagNames(O.O_WRONLY)).toBe('O_WRONLY');
    expect(openFlagNames(O.O_RDWR | O.O_NOCTTY)).toBe('O_RDWR|O_NOCTTY');
  });

  it('lists the other flags after it', () => {
    expect(openFlagNames(O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC)).toBe('O_RDONLY|O_DIRECTORY|O_CLOEXEC|O_PATH');
    expect(openFlagNames(O.O_WRONLY | O.O_CREAT | O.O_EXCL | O.O_NOFOLLOW)).toBe('O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW');
  });
});

describe('errno', () => {
  it('names and describes errnos', () => {
    expect(errnoName(EPERM)).toBe('EPERM');
    expect(errnoName(ENOENT)).toBe('ENOENT');
    expect(errnoName(EINVAL)).toBe('EINVAL');
    expect(errnoName(16)).toBe('EBUSY');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoMessage(ENOENT)).toBe('no such file or directory');
    expect(errnoMessage(EACCES)).toBe('permission denied');
  });

  it('falls back to the number, or the lower-cased name', () => {
    expect(errnoName(4095)).toBe('errno 4095');
    expect(errnoMessage(4095)).toBe('errno 4095');
    expect(errnoMessage(95)).toBe('eopnotsupp');
  });
});

describe('KernelError', () => {
  it('says the syscall, its arguments, the errno by name and its meaning', () => {
    const e = new KernelError('mount', EPERM, `${quote('/src')}, ${quote('/proc/thread-self/fd/7')}, NULL, ${flagNames(MS.MS_BIND | MS.MS_REC, MS)}`);
    expect(e.message).toBe('mount("/src", "/proc/thread-self/fd/7", NULL, MS_BIND|MS_REC): EPERM (operation not permitted)');
    expect(e.code).toBe('EPERM');
    expect(e.errno).toBe(EPERM);
    expect(e.syscall).toBe('mount');
    expect(e.name).toBe('KernelError');
    expect(e).toBeInstanceOf(Error);
  });

  it('quote renders NULL and escapes quotes in paths', () => {
    expect(quote(null)).toBe('NULL');
    expect(quote('/a "b"')).toBe('"/a \\"b\\""');
  });

  it('wrap keeps the kernel error as the cause and hints at root for EPERM', () => {
    const ke = new KernelError('unshare', EPERM, 'CLONE_NEWNS');
    const w = wrap('entering namespaces', ke);
    expect(w).toBeInstanceOf(TsrunError);
    expect(w.code).toBe('CONTAINER_SETUP');
    expect(w.message).toBe('entering namespaces: unshare(CLONE_NEWNS): EPERM (operation not permitted)');
    expect(w.cause).toBe(ke);
    expect(w.hint).toMatch(/root/);
    expect(wrap('x', new KernelError('open', ENOENT, '"/a"')).hint).toBeUndefined();
    const own = new TsrunError('ROOTFS', 'already ours');
    expect(wrap('x', own)).toBe(own);
  });

  it('TsrunError exit codes follow docker: 127 not found, 126 not executable, 125 otherwise', () => {
    expect(new TsrunError('EXEC_NOT_FOUND', 'x').exitCode).toBe(127);
    expect(new TsrunError('EXEC_NOT_EXECUTABLE', 'x').exitCode).toBe(126);
    expect(new TsrunError('SPEC_INVALID', 'x').exitCode).toBe(125);
    expect(new TsrunError('INTERNAL', 'x').exitCode).toBe(125);
  });
});

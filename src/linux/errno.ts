// errno numbers are the same on x86_64 and aarch64 (asm-generic/errno-base.h, errno.h).
const NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 8: 'ENOEXEC',
  9: 'EBADF', 10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 15: 'ENOTBLK',
  16: 'EBUSY', 17: 'EEXIST', 18: 'EXDEV', 19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL',
  23: 'ENFILE', 24: 'EMFILE', 25: 'ENOTTY', 26: 'ETXTBSY', 27: 'EFBIG', 28: 'ENOSPC', 29: 'ESPIPE',
  30: 'EROFS', 31: 'EMLINK', 32: 'EPIPE', 33: 'EDOM', 34: 'ERANGE', 35: 'EDEADLK', 36: 'ENAMETOOLONG',
  37: 'ENOLCK', 38: 'ENOSYS', 39: 'ENOTEMPTY', 40: 'ELOOP', 61: 'ENODATA', 75: 'EOVERFLOW',
  95: 'EOPNOTSUPP', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 104: 'ECONNRESET', 110: 'ETIMEDOUT',
  111: 'ECONNREFUSED', 113: 'EHOSTUNREACH', 116: 'ESTALE', 122: 'EDQUOT',
};

export const EINTR = 4;
export const ENOENT = 2;
export const EACCES = 13;
export const EPERM = 1;
export const ESRCH = 3;
export const ECHILD = 10;
export const EAGAIN = 11;
export const EEXIST = 17;
export const EBUSY = 16;
export const EINVAL = 22;
export const ENOSYS = 38;
export const ENXIO = 6;
export const ENOEXEC = 8;
export const EISDIR = 21;
export const ENOTDIR = 20;
export const ELOOP = 40;

export function errnoName(errno: number): string {
  return NAMES[errno] ?? `errno ${errno}`;
}

const MESSAGES: Record<string, string> = {
  EPERM: 'operation not permitted', ENOENT: 'no such file or directory', ESRCH: 'no such process',
  EINTR: 'interrupted system call', EACCES: 'permission denied', EBUSY: 'device or resource busy',
  EEXIST: 'file exists', ENOTDIR: 'not a directory', EISDIR: 'is a directory', EINVAL: 'invalid argument',
  ENOSPC: 'no space left on device', EROFS: 'read-only file system', ENOSYS: 'function not implemented',
  ELOOP: 'too many levels of symbolic links', ENOEXEC: 'exec format error', ENODEV: 'no such device',
  EXDEV: 'cross-device link', ENOTEMPTY: 'directory not empty', EAGAIN: 'resource temporarily unavailable',
};

export function errnoMessage(errno: number): string {
  return MESSAGES[errnoName(errno)] ?? errnoName(errno).toLowerCase();
}

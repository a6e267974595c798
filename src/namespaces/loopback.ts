// A new network namespace starts with only `lo`, and it is down: even 127.0.0.1 does
// not work until it is brought up. ip(8) does this over netlink; the classic ioctl on
// any socket is enough for one flag. The socket is made by the setup thread, so it
// belongs to the container's network namespace, and so does the interface it names.
import type { Kernel } from '../linux/kernel.js';

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;

export function bringUpLoopback(k: Kernel): void {
  const fd = k.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0, 'a socket in the container\'s network namespace, to configure its interfaces');
  try {
    // struct ifreq: 16 bytes of name, then a union whose first short is ifr_flags.
    const ifr = Buffer.alloc(40);
    ifr.write('lo', 0, 'ascii');
    k.ioctl(fd, SIOCGIFFLAGS, ifr, 'read the flags of lo');
    ifr.writeUInt16LE(ifr.readUInt16LE(16) | IFF_UP, 16);
    k.ioctl(fd, SIOCSIFFLAGS, ifr, 'bring lo up: 127.0.0.1 works inside the container');
  } finally {
    k.close(fd);
  }
}

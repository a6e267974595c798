// v1 blkio: blkio.weight (CFQ, gone since Linux 5.0) or blkio.bfq.weight (BFQ), and
// the throttle files, one "MAJ:MIN RATE" per write.
import type { Ctl, Resources, ThrottleDevice } from '../types.js';

const THROTTLES: Array<[keyof NonNullable<Resources['blockIO']>, string, string]> = [
  ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device', '--device-read-bps'],
  ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device', '--device-write-bps'],
  ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device', '--device-read-iops'],
  ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device', '--device-write-iops'],
];

export function applyBlkio(c: Ctl, bio: Resources['blockIO']): void {
  if (!bio) return;
  if (bio.weight !== undefined && bio.weight !== 0) {
    const blame = { flag: '--blkio-weight', field: 'linux.resources.blockIO.weight', value: String(bio.weight) };
    c.write(c.exists('blkio.weight') ? 'blkio.weight' : 'blkio.bfq.weight', String(bio.weight), blame);
  }
  for (const [key, file, flag] of THROTTLES) {
    for (const d of (bio[key] as ThrottleDevice[] | undefined) ?? []) {
      c.write(file, `${d.major}:${d.minor} ${d.rate}`, { flag, field: `linux.resources.blockIO.${key}`, value: `${d.major}:${d.minor} ${d.rate}` });
    }
  }
}

/** blkio.throttle.io_service_bytes counts every bio, whatever the scheduler: "MAJ:MIN Read N". */
export function blkioStats(c: Ctl): { read: number; write: number } {
  let read = 0;
  let write = 0;
  const text = c.tryRead('blkio.throttle.io_service_bytes_recursive') ?? c.tryRead('blkio.throttle.io_service_bytes') ?? '';
  for (const line of text.split('\n')) {
    const [, op, n] = line.trim().split(/\s+/);
    if (op === 'Read') read += Number(n);
    if (op === 'Write') write += Number(n);
  }
  return { read, write };
}

// v2 io controller: io.weight (or io.bfq.weight) and io.max per device.
import { blkioWeightToIoWeight } from '../convert.js';
import type { Ctl, Resources, ThrottleDevice } from '../types.js';

const THROTTLES: Array<[keyof NonNullable<Resources['blockIO']>, string, string]> = [
  ['throttleReadBpsDevice', 'rbps', '--device-read-bps'],
  ['throttleWriteBpsDevice', 'wbps', '--device-write-bps'],
  ['throttleReadIOPSDevice', 'riops', '--device-read-iops'],
  ['throttleWriteIOPSDevice', 'wiops', '--device-write-iops'],
];

export function applyIo(c: Ctl, bio: Resources['blockIO']): void {
  if (!bio) return;
  if (bio.weight !== undefined && bio.weight !== 0) {
    const blame = { flag: '--blkio-weight', field: 'linux.resources.blockIO.weight', value: String(bio.weight) };
    // With the BFQ scheduler, io.bfq.weight takes blkio's own 1..1000 scale.
    if (c.exists('io.bfq.weight')) c.write('io.bfq.weight', String(bio.weight), blame);
    else c.write('io.weight', `default ${blkioWeightToIoWeight(bio.weight)}`, blame);
  }
  for (const [key, name, flag] of THROTTLES) {
    for (const d of (bio[key] as ThrottleDevice[] | undefined) ?? []) {
      // One line per write: io.max parses a single "MAJ:MIN key=value..." per write(2).
      // A rate of 0 means "no limit", as v1's throttle files read it (docker and
      // `update` use it to lift a limit); io.max answers ERANGE to 0 and wants "max".
      const rate = d.rate === 0 ? 'max' : String(d.rate);
      c.write('io.max', `${d.major}:${d.minor} ${name}=${rate}`, { flag, field: `linux.resources.blockIO.${key}`, value: `${d.major}:${d.minor} ${d.rate}` });
    }
  }
}

/** io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device. */
export function ioStats(c: Ctl): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of (c.tryRead('io.stat') ?? '').split('\n')) {
    for (const kv of line.split(' ').slice(1)) {
      const [k, v] = kv.split('=');
      if (k === 'rbytes') read += Number(v);
      if (k === 'wbytes') write += Number(v);
    }
  }
  return { read, write };
}

import { constants } from 'node:os';
import { TsrunError } from '../errors.js';

/** A signal by name (with or without SIG, any case) or number, as runc and docker take it. */
export function parseSignal(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= 64) return n;
  } else {
    const up = s.toUpperCase();
    const name = (up.startsWith('SIG') ? up : `SIG${up}`) as keyof typeof constants.signals;
    const n = constants.signals[name];
    if (n !== undefined) return n;
  }
  throw new TsrunError('USAGE', `invalid signal "${s}"`, { hint: 'use a name such as TERM, SIGKILL, or a number from 1 to 64' });
}

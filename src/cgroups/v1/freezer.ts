// v1 freezer: stop every task so that none can fork while we kill them one by one.
import type { Ctl } from '../types.js';
import { sleepSync } from '../../sleep.js';


/** Freezes and waits until the kernel reports FROZEN (it passes through FREEZING). */
export function freeze(c: Ctl, timeoutMs = 2000): boolean {
  c.write('freezer.state', 'FROZEN', { flag: '(cleanup)', field: 'freezer', value: 'FROZEN' });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (c.read('freezer.state').trim() === 'FROZEN') return true;
    if (Date.now() > deadline) return false;
    sleepSync(5);
  }
}

export function thaw(c: Ctl): void {
  c.write('freezer.state', 'THAWED', { flag: '(cleanup)', field: 'freezer', value: 'THAWED' });
}

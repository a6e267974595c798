// One host-wide lock for everything the network code changes: bridges, veths, the
// address files and tsrun's nftables table are host-wide objects, shared by every
// tsrun process whatever its --root. The lock is a file made with O_EXCL holding its
// owner's pid and start time; a holder that died (kill -9) is detected by that pair
// (pids are reused) and its lock broken. Node has no flock(2), and an O_EXCL file also
// tells a human who holds it.
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { TsrunError } from '../errors.js';
import { isAlive, procStartTime } from '../runtime/proc-scan.js';
import { step } from './exec.js';

const nap = new Int32Array(new SharedArrayBuffer(4));

export function withLock<T>(path: string, fn: () => T, timeoutMs = 60_000): T {
  const me = `${process.pid} ${procStartTime(process.pid) ?? 0}`;
  const deadline = Date.now() + timeoutMs;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, me);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = '';
    try {
      holder = readFileSync(path, 'utf8');
    } catch {
      continue; // released between our open and read
    }
    const [pid, start] = holder.split(' ').map(Number);
    // An empty file is a holder between its open and its write: wait for it.
    if (holder && pid && !isAlive(pid, start ?? 0)) {
      step('break-lock', path, `the holder (pid ${pid}) is gone; its changes are re-checked by the garbage collector`);
      try {
        unlinkSync(path);
      } catch {
        /* another waiter broke it first */
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new TsrunError('CONTAINER_SETUP', `network: timed out after ${timeoutMs} ms waiting for the network lock ${path} (held by pid ${pid})`, {
        hint: 'another tsrun is changing the network; if it is stuck, stop it',
      });
    }
    Atomics.wait(nap, 0, 0, Math.min(2 + attempt, 20));
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* already broken by a waiter that thought we were dead: cannot happen while we live */
    }
  }
}

// One cross-process lock for everything tsrun serializes (container names, the network,
// the image store's repositories). Node has no flock(2); a lock is a file created with
// O_EXCL that holds its owner's "pid start-time\n". The pair identifies the owner even
// after pid reuse, so a holder killed with kill -9 is detected and its lock broken; the
// trailing newline tells a fully written lock from one whose owner is between open and
// write. A human can read who holds it.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { type ErrorCode, TsrunError } from '../errors.js';
import { isAlive, procStartTime } from './proc-scan.js';
import { sleepSync } from '../sleep.js';

export interface LockOptions {
  /** what is being locked, for the timeout error: "the network", "container names" */
  what: string;
  code?: ErrorCode;
  timeoutMs?: number;
  /** called when a dead holder's lock is broken (for --trace) */
  onBreak?: (pid: number) => void;
}

let me: string | undefined;

/** One attempt: true when we now hold the lock. Breaks a dead holder's lock on the way. */
function attempt(path: string, o: LockOptions): { held: true } | { held: false; pid: number } {
  me ??= `${process.pid} ${procStartTime(process.pid) ?? 0}\n`;
  try {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, me);
    closeSync(fd);
    return { held: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  let owner: string;
  try {
    owner = readFileSync(path, 'utf8');
  } catch {
    return { held: false, pid: 0 }; // released meanwhile: try again
  }
  const [pid = 0, start = -1] = owner.trim().split(' ').map(Number);
  if (owner.endsWith('\n') && pid && !isAlive(pid, start)) {
    // Break it by renaming first, so two breakers cannot both remove a fresh lock.
    const stale = `${path}.stale-${process.pid}`;
    try {
      renameSync(path, stale);
      if (readFileSync(stale, 'utf8') === owner) {
        rmSync(stale, { force: true });
        o.onBreak?.(pid);
      } else renameSync(stale, path); // someone else's fresh lock: put it back
    } catch {
      /* another breaker got there first */
    }
  }
  return { held: false, pid };
}

function release(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* broken by someone who thought us dead: nothing to release */
  }
}

function timedOut(path: string, pid: number, o: LockOptions): TsrunError {
  return new TsrunError(o.code ?? 'STATE', `timed out waiting for the lock on ${o.what} (${path}, held by pid ${pid})`, {
    hint: 'another tsrun is working on it; if that process is stuck, stop it (a dead holder\'s lock is broken automatically)',
  });
}

/**
 * One acquisition: each call tries once and returns 0 once the lock is held, or how
 * long to wait before the next try (2 ms, growing to 20); past the timeout it throws.
 * The two lock functions differ only in how they wait.
 */
function acquisition(path: string, o: LockOptions): () => number {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  let i = 0;
  return () => {
    const a = attempt(path, o);
    if (a.held) return 0;
    if (Date.now() > deadline) throw timedOut(path, a.pid, o);
    return Math.min(2 + i++, 20);
  };
}

/** Runs `fn` holding the lock; waits (blocking) for it. */
export function withFileLock<T>(path: string, fn: () => T, o: LockOptions): T {
  const next = acquisition(path, o);
  for (let ms = next(); ms > 0; ms = next()) sleepSync(ms);
  try {
    return fn();
  } finally {
    release(path);
  }
}

/** The same, for work that awaits while holding the lock; waits without blocking the event loop. */
export async function withFileLockAsync<T>(path: string, fn: () => T | Promise<T>, o: LockOptions): Promise<T> {
  const next = acquisition(path, o);
  for (let ms = next(); ms > 0; ms = next()) await new Promise((r) => setTimeout(r, ms));
  try {
    return await fn();
  } finally {
    release(path);
  }
}

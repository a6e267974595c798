// Small readers of /proc used by the launcher and the garbage collector.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** State (field 3) and start time (field 22: clock ticks since boot) from /proc/PID/stat; null once the pid is gone. */
function procStat(pid: number): { state: string; start: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, start: Number(fields[19]) };
  } catch {
    return null;
  }
}

/** The start time: with the pid it identifies a process even after pid reuse. */
export function procStartTime(pid: number): number | null {
  return procStat(pid)?.start ?? null;
}

/**
 * Whether the process PID that started at START still runs. A zombie does not: it has
 * exited and only its parent's wait is missing (a killed monitor's children wait for
 * the host's init, which can take a while to reap them).
 */
export function isAlive(pid: number, startTime: number): boolean {
  const s = procStat(pid);
  return s !== null && s.start === startTime && s.state !== 'Z';
}

/** Children of this process (any thread) that are not in `known`. */
export function findNewChildren(known: Set<number>): number[] {
  const me = String(process.pid);
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const c = e.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(e);
    if (known.has(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 2)[1];
      if (ppid === me) out.push(pid);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** Processes whose cwd is `dir`: a container process still blocked at its start gate stands there. */
export function processesWithCwd(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/cwd`) === dir) out.push(Number(e));
    } catch {
      /* not ours to read, or gone */
    }
  }
  return out;
}

/** Every process in the PID namespace of `pid` (host pids), for kill --all, ps and top. Empty when `pid` is gone. */
export function processesInPidns(pid: number): number[] {
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const c = e.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/pid`) === ns) out.push(Number(e));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

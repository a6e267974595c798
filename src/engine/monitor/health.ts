// HEALTHCHECK probes, run by the monitor as exec processes in the container. The
// output is captured through a file on the host (opened here, passed as fds 1 and 2)
// and cut to 4 KiB, docker's limit for the health log.
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Kernel } from '../../linux/kernel.js';
import { type Paths, stateDir } from '../../runtime/state.js';
import { type HealthConfig, readRecord } from '../containers.js';
import { startExec } from './exec.js';

export interface ProbeResult {
  exitCode: number;
  output: string;
  start: string;
  end: string;
}

/** The argv of a probe: docker's ["CMD", ...] or ["CMD-SHELL", "cmd"]. */
export function probeArgs(test: string[]): string[] | null {
  if (test[0] === 'NONE' || test.length === 0) return null;
  if (test[0] === 'CMD') return test.slice(1);
  if (test[0] === 'CMD-SHELL') return ['/bin/sh', '-c', test.slice(1).join(' ')];
  return test;
}

export async function runHealthcheck(
  k: Kernel, p: Paths, id: string, hc: HealthConfig,
  serial: <T>(f: () => Promise<T>) => Promise<T>, known: Set<number>,
): Promise<ProbeResult> {
  const start = new Date().toISOString();
  const args = probeArgs(hc.test);
  if (!args) return { exitCode: 0, output: '', start, end: start };
  // In the container's runtime dir: it goes with the container whatever happens to the probe.
  const out = join(stateDir(p, id), `health-${randomBytes(6).toString('hex')}`);
  const fd = openSync(out, 'w+', 0o600);
  try {
    const h = await startExec(k, p, readRecord(p, id), {
      args, env: [], tty: null,
      stdio: [{ fd: 0, from: { path: '/dev/null', flags: 0 } }, { fd: 1, from: { parentFd: fd } }, { fd: 2, from: { parentFd: fd } }],
    }, serial, known);
    h.cleanup();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<number>((res) => {
      timer = setTimeout(() => {
        try {
          k.kill(h.pid, 9, 'health probe timed out');
        } catch {
          /* gone */
        }
        res(-1);
      }, hc.timeoutMs);
    });
    let code = await Promise.race([h.exit!, timedOut]);
    clearTimeout(timer);
    if (code === -1) await h.exit;
    known.delete(h.pid);
    const text = readFileSync(out, 'utf8').slice(0, 4096);
    if (code === -1) code = 1;
    return { exitCode: code, output: code === -1 ? `Health check exceeded timeout (${hc.timeoutMs}ms)` : text, start, end: new Date().toISOString() };
  } catch (e) {
    return { exitCode: 1, output: (e as Error).message, start, end: new Date().toISOString() };
  } finally {
    closeSync(fd);
    rmSync(out, { force: true });
  }
}

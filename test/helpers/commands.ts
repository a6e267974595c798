// Which optional host programs a test can use (skopeo, zstd, conntrack, podman, ...).
import { execFileSync } from 'node:child_process';

/** Whether every ARGV (a program and its arguments, e.g. ['zstd', '--version']) runs and exits 0. */
export function commandsRun(...argvs: string[][]): boolean {
  try {
    for (const [cmd, ...args] of argvs) execFileSync(cmd!, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

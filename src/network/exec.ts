// The network plumbing talks to the kernel through iproute2 and nftables, run
// synchronously. Measured here: one `ip` or `nft -f` call costs 5-10 ms, and a whole
// bridge attachment needs three of them (host side, container side, firewall), which is
// small next to Node's own start-up. Netlink through koffi would save those few ms but
// would need a netlink encoder for links, addresses, routes and nftables' batches, each
// a source of subtle bugs; iproute2 and nft already validate and report errors well.
// Synchronous: every call runs under the network lock, and the container is parked at
// its start gate while they run, so there is nothing else for the event loop to do.
import { spawnSync } from 'node:child_process';
import { TsrunError } from '../errors.js';
import { tracer } from '../trace/tracer.js';

export interface CmdResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs CMD ARGS (with INPUT on stdin), narrated as a `net` step. Never throws. OK: the exit statuses that mean success. */
export function tryCmd(cmd: string, args: string[], why: string, input?: string, okStatus: number[] = [0]): CmdResult {
  const t0 = tracer.on ? tracer.now() : undefined;
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8', timeout: 20_000, stdio: ['pipe', 'pipe', 'pipe'] });
  const ok = r.status !== null && okStatus.includes(r.status);
  const stderr = r.error ? r.error.message : (r.stderr ?? '');
  if (tracer.on) {
    const shown = input ? `${args.join(' ')} <<< ${JSON.stringify(input.length > 300 ? input.slice(0, 300) + '...' : input)}` : args.join(' ');
    tracer.emit('net', cmd, shown, ok ? '0' : `failed: ${stderr.trim().split('\n')[0] ?? ''}`, why, t0, !ok);
  }
  return { ok, stdout: r.stdout ?? '', stderr };
}

/** Like tryCmd, but a failure is a TsrunError naming the command and its message. */
export function cmd(command: string, args: string[], why: string, input?: string): string {
  const r = tryCmd(command, args, why, input);
  if (!r.ok) {
    const missing = /ENOENT/.test(r.stderr);
    throw new TsrunError('CONTAINER_SETUP', `network: ${command} ${args.join(' ')}: ${r.stderr.trim() || 'failed'}`, {
      hint: missing ? `install ${command === 'nft' ? 'nftables' : 'iproute2'}: tsrun's networking uses it` : why,
    });
  }
  return r.stdout;
}

/** A `net` trace step for work that is not a command (a file write, a sysctl, an allocation). */
export function step(name: string, args: string, why: string, result = '0'): void {
  if (tracer.on) tracer.emit('net', name, args, result, why);
}

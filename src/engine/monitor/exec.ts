// A process inside a running engine container: `tsrun exec` (in the CLI process) and
// health probes (in the monitor). The setup thread joins the container's namespaces
// (launch mode 'exec'); the process keeps the container's capabilities, seccomp
// filter, no_new_privs, rlimits and AppArmor settings, because it starts from the
// container's own process spec with only argv/env/cwd/user/terminal replaced. It also
// joins the container's cgroup before its gate opens, so its memory and pids count
// against the container's limits (and `pause` freezes it too).
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Kernel, SpawnStdio } from '../../linux/kernel.js';
import { TsrunError, wrap } from '../../errors.js';
import { cgroupManager } from '../../cgroups/manager.js';
import { detectCgroups } from '../../cgroups/detect.js';
import { resolveUser } from '../../image/config.js';
import { type Launched, killQuietly, launch, openGate } from '../../runtime/launcher.js';
import { GATE_NAME } from '../../runtime/protocol.js';
import { type Paths, stateDir } from '../../runtime/state.js';
import { waitExit } from '../../runtime/run.js';
import { lastCap } from '../../security/capabilities.js';
import type { Spec } from '../../spec/types.js';
import { tracer } from '../../trace/tracer.js';
import { type Record, observe } from '../containers.js';

export interface ExecOptions {
  args: string[];
  env: string[];
  workdir?: string;
  user?: string;
  tty: { rows: number; cols: number } | null;
  stdio: SpawnStdio[];
  /** -d: nobody waits for it (a waiter would keep this process alive) */
  detach?: boolean;
}

export interface ExecHandle {
  pid: number;
  launched: Launched;
  /** null when detached */
  exit: Promise<number> | null;
  /** removes the exec's gate dir; call once the process runs */
  cleanup: () => void;
}

function readIn(pid: number, path: string): string | null {
  try {
    // /proc/PID/root resolves inside the container's root, not the host's.
    return readFileSync(`/proc/${pid}/root${path}`, 'utf8');
  } catch {
    return null;
  }
}

export function execProcessSpec(r: Record, pid: number, o: ExecOptions): NonNullable<Spec['process']> {
  const base = r.spec.process!;
  let user = base.user;
  if (o.user !== undefined) {
    const u = resolveUser(o.user, { passwd: readIn(pid, '/etc/passwd'), group: readIn(pid, '/etc/group') });
    user = { uid: u.uid, gid: u.gid, ...(u.additionalGids.length ? { additionalGids: u.additionalGids } : {}) };
  }
  // docker: exec's environment is the container's, with -e on top.
  const env = [...(base.env ?? [])];
  for (const e of o.env) {
    const key = e.split('=')[0]!;
    const i = env.findIndex((x) => x.split('=')[0] === key);
    if (i >= 0) env[i] = e;
    else env.push(e);
  }
  return { ...base, args: o.args, env, cwd: o.workdir ?? base.cwd, user, terminal: o.tty !== null };
}

/**
 * Starts the exec process and opens its gate. `serial` wraps launch() where several
 * launches share a parent (the monitor): launch() finds its child as "a new child".
 */
export async function startExec(
  k: Kernel, p: Paths, r: Record, o: ExecOptions,
  serial: <T>(f: () => Promise<T>) => Promise<T> = (f) => f(),
  known: Set<number> = new Set(),
): Promise<ExecHandle> {
  const obs = observe(p, r);
  if (obs.status === 'paused') throw new TsrunError('STATE', `container ${r.id.slice(0, 12)} is paused, unpause it first`);
  if (obs.status !== 'running') throw new TsrunError('STATE', `container ${r.id.slice(0, 12)} is not running`);
  const process = execProcessSpec(r, obs.pid, o);
  const dir = join(stateDir(p, r.id), `exec-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { mode: 0o711 });
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  let pid: number | undefined;
  try {
    k.mkfifo(join(dir, GATE_NAME), 0o644);
    const { launched, exit } = await serial(async () => {
      const l = await launch(
        k,
        {
          mode: 'exec', spec: { ...r.spec, process }, rootfs: r.rootfs, bundle: r.bundle, stateDir: dir, joinPid: obs.pid,
          tty: o.tty, stdio: o.stdio, preserveFds: 0, trace: tracer.mode, color: false,
          lastCap: lastCap(() => readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')),
        },
        known,
      );
      known.add(l.pid);
      // Registered before the gate opens, so no SIGCHLD is missed.
      return { launched: l, exit: o.detach ? null : waitExit(k, l.pid) };
    });
    pid = launched.pid;
    const cg = obs.rt?.cgroupsPath;
    if (cg) {
      const layout = detectCgroups();
      if (layout.mode !== 'none') cgroupManager(k, cg, layout).addProcess(pid);
    }
    openGate(k, dir, pid);
    return { pid, launched, exit, cleanup };
  } catch (e) {
    if (pid !== undefined) killQuietly(k, pid);
    cleanup();
    throw wrap(`exec in container ${r.id.slice(0, 12)}`, e);
  }
}

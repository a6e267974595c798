// The CLI's side of the monitor: connect to <runRoot>/monitor.sock, starting the
// monitor when nobody listens. Several CLIs may start one at once (50 `run -d` in
// parallel); the monitor lock lets one win and the others exit.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { TsrunError, type ErrorCode } from '../../errors.js';
import type { Paths } from '../../runtime/state.js';
import { type MonitorReply, type MonitorRequest, socketPath } from './protocol.js';

function once(path: string, req: MonitorRequest): Promise<MonitorReply> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    let buf = '';
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d) => {
      buf += d.toString();
    });
    c.on('error', reject);
    c.on('close', () => {
      const line = buf.split('\n')[0];
      if (!line) {
        reject(Object.assign(new Error('the monitor closed the connection without a reply'), { code: 'ENOREPLY' }));
        return;
      }
      try {
        resolve(JSON.parse(line) as MonitorReply);
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Starts `tsrun __monitor` in its own session, its output going to <runRoot>/monitor.log. */
export function spawnMonitor(paths: Paths, rootFlag: string | undefined): void {
  mkdirSync(paths.runRoot, { recursive: true, mode: 0o711 });
  const logFile = join(paths.runRoot, 'monitor.log');
  try {
    // Keep the monitor's own log small: it only says what it did.
    if (statSync(logFile).size > 1 << 20) renameSync(logFile, `${logFile}.1`);
  } catch {
    /* none yet */
  }
  const log = openSync(logFile, 'a', 0o600);
  try {
    const script = process.argv[1]!;
    const args = ['--', script, ...(rootFlag ? ['--root', rootFlag] : []), '__monitor'];
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], cwd: '/', env: process.env });
    child.unref();
  } finally {
    closeSync(log);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Sends one request. With `start`, a missing monitor is started; without, a missing
 * monitor is an error the caller handles (the container is not watched).
 */
export async function callMonitor(paths: Paths, req: MonitorRequest, o: { start: boolean; rootFlag?: string }): Promise<MonitorReply> {
  const path = socketPath(paths.runRoot);
  const deadline = Date.now() + 20_000;
  let spawnedAt = 0;
  for (;;) {
    let reply: MonitorReply;
    try {
      reply = await once(path, req);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOREPLY') {
        throw new TsrunError('STATE', 'the monitor went away while handling the request', { hint: 'check <runRoot>/monitor.log; a new monitor starts with the next command' });
      }
      // ECONNRESET before any reply: a lingering monitor closed its socket as we
      // connected, before accepting us, so it never saw the request.
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED' && code !== 'ECONNRESET') throw e;
      if (!o.start) throw new TsrunError('STATE', 'no monitor is running', { cause: e });
      if (Date.now() > deadline) throw new TsrunError('STATE', 'the monitor did not start', { hint: `see ${join(paths.runRoot, 'monitor.log')}` });
      // A monitor that exits meanwhile, or one that lost the race: start again after a while.
      if (Date.now() - spawnedAt > 3000) {
        spawnMonitor(paths, o.rootFlag);
        spawnedAt = Date.now();
      }
      await sleep(25);
      continue;
    }
    if (reply.exiting && reply.monitorPid) {
      // Wait until it is gone, so nothing of ours outlives the command that ended it.
      // A zombie counts as gone: its reaper (init, here) may take a second to get to it.
      const until = Date.now() + 3000;
      while (runningProcess(reply.monitorPid) && Date.now() < until) await sleep(10);
    }
    if (!reply.ok) {
      const err = reply.error ?? { code: 'INTERNAL', message: 'the monitor failed' };
      throw new TsrunError(err.code as ErrorCode, err.message, { hint: err.hint });
    }
    return reply;
  }
}

/**
 * Opens a byte stream to a -t container's terminal (the `attach` op), starting a
 * monitor if none runs (it adopts the container and takes its pty back from the holder).
 * Bytes that came with the reply line are pushed back onto the socket.
 */
export async function attachTerminal(paths: Paths, id: string, rootFlag: string | undefined): Promise<net.Socket> {
  await callMonitor(paths, { op: 'ping' }, { start: true, rootFlag });
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath(paths.runRoot));
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      c.removeListener('data', onData);
      c.pause();
      let reply: MonitorReply;
      try {
        reply = JSON.parse(buf.subarray(0, nl).toString()) as MonitorReply;
      } catch (e) {
        c.destroy();
        reject(e as Error);
        return;
      }
      if (!reply.ok) {
        c.destroy();
        const err = reply.error ?? { code: 'INTERNAL', message: 'the monitor failed' };
        reject(new TsrunError(err.code as ErrorCode, err.message, { hint: err.hint }));
        return;
      }
      if (buf.length > nl + 1) c.unshift(buf.subarray(nl + 1));
      resolve(c);
    };
    c.on('connect', () => c.write(JSON.stringify({ op: 'attach', id } satisfies MonitorRequest) + '\n'));
    c.on('data', onData);
    c.once('error', reject);
    c.once('close', () => reject(new TsrunError('STATE', 'the monitor closed the connection without a reply')));
  });
}

function runningProcess(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st[st.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

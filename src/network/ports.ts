// docker's -p/--publish and -P. A published port is a DNAT rule (firewall.ts) plus a
// socket that tsrun holds on the host port for as long as the container runs: the
// socket makes "port already in use" an error before anything is created, keeps other
// programs from taking the port later, and gives -P its free port from the kernel.
// It never sees a packet: nat/prerouting and nat/output rewrite the destination first.
import { createServer, type Server } from 'node:net';
import { createSocket, type Socket } from 'node:dgram';
import { TsrunError } from '../errors.js';
import { ipToInt } from './ipam.js';

export type Proto = 'tcp' | 'udp';

export interface PortSpec {
  /** '' for every host address */
  hostIp: string;
  /** 0: let the kernel choose */
  hostPort: number;
  containerPort: number;
  proto: Proto;
}

function port(v: string, what: string, flag: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new TsrunError('USAGE', `-p ${flag}: ${what} "${v}" is not a port number (1-65535)`);
  return n;
}

/** -p [[IP:]HOSTPORT:]CTRPORT[/tcp|udp] */
export function parsePublish(v: string): PortSpec {
  let rest = v;
  let proto: Proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw new TsrunError('USAGE', `-p ${v}: protocol "${p}" is not tcp or udp`);
    proto = p;
    rest = rest.slice(0, slash);
  }
  const parts = rest.split(':');
  if (parts.length > 3 || parts.some((p, i) => p.includes('-') && i > 0) || rest.includes('-')) {
    throw new TsrunError('USAGE', `-p ${v}: expected [[IP:]HOSTPORT:]CONTAINERPORT[/tcp|udp]`, { hint: 'port ranges are not supported; give one -p per port' });
  }
  const containerPort = port(parts[parts.length - 1]!, 'container port', v);
  const hostPort = parts.length >= 2 && parts[parts.length - 2] !== '' ? port(parts[parts.length - 2]!, 'host port', v) : 0;
  const hostIp = parts.length === 3 ? parts[0]! : '';
  if (hostIp) {
    try {
      ipToInt(hostIp);
    } catch {
      throw new TsrunError('USAGE', `-p ${v}: "${hostIp}" is not an IPv4 address`, { hint: 'tsrun publishes IPv4 ports only' });
    }
  }
  return { hostIp, hostPort, containerPort, proto };
}

/** -P: every port the image exposes ("80/tcp" keys of ExposedPorts), on a port the kernel picks. */
export function exposedToPublish(exposed: string[]): PortSpec[] {
  return exposed.map((e) => {
    const [p, proto = 'tcp'] = e.split('/');
    if (proto !== 'tcp' && proto !== 'udp') throw new TsrunError('USAGE', `the image exposes ${e}: only tcp and udp can be published`);
    return { hostIp: '', hostPort: 0, containerPort: port(p!, 'exposed port', e), proto };
  });
}

/**
 * docker's --expose PORT[-PORT][/tcp|udp]: ports the container says it listens on, as
 * ExposedPorts keys ("80/tcp"). Exposing publishes nothing; -P publishes them all.
 */
export function parseExpose(v: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/.exec(v);
  const bad = (why: string): TsrunError => new TsrunError('USAGE', `--expose ${v}: ${why}`, { hint: 'expected PORT, PORT/udp or a range such as 8000-8010/tcp' });
  if (!m) throw bad('not a port');
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535) throw bad('ports are 1-65535');
  if (hi < lo) throw bad('the range ends before it starts');
  const proto = m[3] ?? 'tcp';
  return Array.from({ length: hi - lo + 1 }, (_, i) => `${lo + i}/${proto}`);
}

export function formatMapping(p: PortSpec): string {
  return `${p.containerPort}/${p.proto} -> ${p.hostIp || '0.0.0.0'}:${p.hostPort}`;
}

export interface Reservation {
  spec: PortSpec;
  close(): void;
}

/** Binds the host port, or fails with the clear error docker gives. */
export function reserve(spec: PortSpec): Promise<Reservation> {
  const where = `${spec.hostIp || '0.0.0.0'}:${spec.hostPort || '(any)'}/${spec.proto}`;
  const fail = (e: NodeJS.ErrnoException): TsrunError =>
    new TsrunError(
      'CONTAINER_SETUP',
      e.code === 'EADDRINUSE'
        ? `cannot publish ${where}: the port is already in use on the host`
        : `cannot publish ${where}: ${e.message}`,
      { hint: e.code === 'EADDRINUSE' ? 'choose another host port (ss -ltnup shows who holds it), or -p CONTAINERPORT for a free one' : 'check the -p address: it must be one of the host\'s' },
    );
  return new Promise((resolve, reject) => {
    if (spec.proto === 'tcp') {
      const srv: Server = createServer();
      srv.once('error', (e) => reject(fail(e)));
      srv.listen({ port: spec.hostPort, host: spec.hostIp || '0.0.0.0', exclusive: true, backlog: 1 }, () => {
        srv.unref();
        const a = srv.address();
        const got = typeof a === 'object' && a ? a.port : spec.hostPort;
        resolve({ spec: { ...spec, hostPort: got }, close: () => srv.close() });
      });
    } else {
      const sock: Socket = createSocket({ type: 'udp4', reuseAddr: false });
      sock.once('error', (e) => reject(fail(e)));
      sock.bind({ port: spec.hostPort, address: spec.hostIp || '0.0.0.0', exclusive: true }, () => {
        sock.unref();
        resolve({ spec: { ...spec, hostPort: sock.address().port }, close: () => sock.close() });
      });
    }
  });
}

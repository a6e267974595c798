// A real registry for the e2e suite: Debian's docker-registry (distribution v2) on
// 127.0.0.1, on a free port, with its own storage dir and config file. Optionally TLS
// with a CA made at test time (openssl) and htpasswd basic auth (bcrypt, htpasswd -B).
// Also a tiny pusher that speaks the distribution API, so tests need no skopeo.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Blob, BuiltImage } from './images.js';

export interface TestRegistry {
  /** host:port */
  host: string;
  dir: string;
  tls: boolean;
  caFile?: string;
  user?: string;
  password?: string;
  push(repo: string, tag: string, image: BuiltImage): Promise<void>;
  pushIndex(repo: string, tag: string, index: Blob, images: BuiltImage[]): Promise<void>;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function makeCa(dir: string): { caFile: string; cert: string; key: string } {
  const o = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tsrun test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  o(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  o(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.crt']);
  return { caFile: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

export async function startRegistry(opts: { tls?: boolean; auth?: { user: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'tsrun-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let tlsCfg = '';
  let caFile: string | undefined;
  if (opts.tls) {
    const c = makeCa(dir);
    caFile = c.caFile;
    tlsCfg = `  tls:\n    certificate: ${c.cert}\n    key: ${c.key}\n`;
  }
  let authCfg = '';
  if (opts.auth) {
    const line = execFileSync('htpasswd', ['-Bbn', opts.auth.user, opts.auth.password], { encoding: 'utf8' });
    writeFileSync(join(dir, 'htpasswd'), line);
    authCfg = `auth:\n  htpasswd:\n    realm: tsrun-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  writeFileSync(join(dir, 'config.yml'), `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
http:
  addr: ${host}
  secret: tsrun-test-secret
${tlsCfg}${authCfg}`);
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const ca = caFile ? readFileSync(caFile) : undefined;
  const authHeader = opts.auth ? { Authorization: `Basic ${Buffer.from(`${opts.auth.user}:${opts.auth.password}`).toString('base64')}` } : {};
  const base = `${opts.tls ? 'https' : 'http'}://${host}`;

  const request = (method: string, url: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> =>
    new Promise((resolve, reject) => {
      const u = new URL(url, base);
      const mod = u.protocol === 'https:' ? https : http;
      const req = mod.request(u, { method, headers: { ...authHeader, ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) }, ...(ca ? { ca } : {}) }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      const r = await request('GET', '/v2/');
      if (r.status === 200 || r.status === 401) break;
    } catch {
      /* not up yet */
    }
    if (i > 200) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const pushBlob = async (repo: string, b: Blob): Promise<void> => {
    const head = await request('HEAD', `/v2/${repo}/blobs/${b.digest}`);
    if (head.status === 200) return;
    const start = await request('POST', `/v2/${repo}/blobs/uploads/`);
    if (start.status !== 202) throw new Error(`upload start ${repo}: ${start.status} ${start.body}`);
    const loc = new URL(String(start.headers.location), base);
    loc.searchParams.set('digest', b.digest);
    const put = await request('PUT', loc.toString(), b.data, { 'Content-Type': 'application/octet-stream' });
    if (put.status !== 201) throw new Error(`upload ${b.digest}: ${put.status} ${put.body}`);
  };
  const pushManifest = async (repo: string, ref: string, m: Blob): Promise<void> => {
    const r = await request('PUT', `/v2/${repo}/manifests/${ref}`, m.data, { 'Content-Type': m.mediaType });
    if (r.status !== 201) throw new Error(`manifest ${repo}:${ref}: ${r.status} ${r.body}`);
  };
  const pushImage = async (repo: string, ref: string, img: BuiltImage): Promise<void> => {
    await Promise.all([img.config, ...img.layers].map((b) => pushBlob(repo, b)));
    await pushManifest(repo, ref, img.manifest);
  };

  return {
    host, dir, tls: !!opts.tls, ...(caFile ? { caFile } : {}), ...(opts.auth ? { user: opts.auth.user, password: opts.auth.password } : {}),
    push: pushImage,
    async pushIndex(repo, tag, index, images) {
      for (const img of images) await pushImage(repo, img.manifest.digest, img);
      await pushManifest(repo, tag, index);
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** corrupt: one byte flipped; truncate: half, then the connection drops; stall: half, then nothing (the connection stays open); error500: a 503 */
export type Fault = 'corrupt' | 'truncate' | 'stall' | 'error500';

export interface FaultyProxy {
  host: string;
  /** how many requests each path got */
  hits: Map<string, number>;
  /** set a fault for requests whose path ends with `suffix`; `times` limits how often (default: always) */
  fault(suffix: string, f: Fault, times?: number): void;
  clear(): void;
  stop(): Promise<void>;
}

/** A plain-HTTP proxy in front of a registry that can corrupt, cut off or fail chosen responses. */
export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  const rules: { suffix: string; f: Fault; left: number }[] = [];
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const rule = rules.find((r) => path.split('?')[0]!.endsWith(r.suffix) && r.left > 0);
    if (rule) rule.left--;
    if (rule?.f === 'error500') {
      res.writeHead(503, { 'Content-Type': 'text/plain' }).end('try later');
      return;
    }
    const up = http.request(`http://${target}${path}`, { method: req.method, headers: { ...req.headers, host: target } }, (ur) => {
      if (!rule || (ur.statusCode ?? 0) >= 300) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(ur.statusCode ?? 200, { ...ur.headers, 'content-length': String(body.length) });
        if (rule.f === 'corrupt') {
          const bad = Buffer.from(body);
          const i = Math.max(0, bad.length - 30);
          bad[i] = bad[i]! ^ 0xff;
          res.end(bad);
        } else if (rule.f === 'stall') {
          res.write(body.subarray(0, body.length >> 1));
        } else {
          // send half, then drop the connection: the client sees fewer bytes than Content-Length
          res.write(body.subarray(0, body.length >> 1), () => res.destroy());
        }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    hits,
    fault(suffix, f, times = Infinity) {
      rules.push({ suffix, f, left: times });
    },
    clear() {
      rules.length = 0;
      hits.clear();
    },
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export interface TokenProxy {
  host: string;
  /** scopes the token server was asked for, with the user (or "anonymous") */
  tokenRequests: { scope: string | null; service: string | null; user: string }[];
  stop(): Promise<void>;
}

/**
 * A registry front that speaks docker's token auth: /v2/ requests without a valid
 * bearer token get 401 + `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the
 * realm (/token on the same server) trades basic credentials (or none, when
 * `anonymous` is allowed) for a token. Valid requests are forwarded to `target`.
 */
export async function startTokenProxy(target: string, opts: { user?: string; password?: string; anonymous?: boolean }): Promise<TokenProxy> {
  const tokens = new Set<string>();
  const tokenRequests: TokenProxy['tokenRequests'] = [];
  let host = '';
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', `http://${host}`);
    if (u.pathname === '/token') {
      const auth = req.headers.authorization ?? '';
      let user = 'anonymous';
      if (auth.startsWith('Basic ')) {
        const [name, pass] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
        if (name !== opts.user || pass !== opts.password) {
          res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
          return;
        }
        user = name!;
      } else if (!opts.anonymous) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      tokenRequests.push({ scope: u.searchParams.get('scope'), service: u.searchParams.get('service'), user });
      const tok = `tok-${tokens.size}-${Math.random().toString(36).slice(2)}`;
      tokens.add(tok);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: tok, expires_in: 300 }));
      return;
    }
    const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (!tokens.has(bearer)) {
      const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(u.pathname)?.[1];
      res.writeHead(401, {
        'WWW-Authenticate': `Bearer realm="http://${host}/token",service="tsrun-test"${repo ? `,scope="repository:${repo}:pull"` : ''}`,
        'Content-Type': 'application/json',
      }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const up = http.request(`http://${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: target, authorization: '' } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    host,
    tokenRequests,
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

// A client for the OCI distribution API (GET /v2/<name>/manifests|blobs/<ref>) over
// node:http(s). Authentication follows the registry's challenge: a 401 carries
// WWW-Authenticate, either Basic (send the credentials) or Bearer (trade them at the
// realm for a token scoped to this repository; docker's token spec).
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { TsrunError } from '../errors.js';
import { type Credentials, getCredentials, parseChallenge } from './auth.js';
import { registryHost } from './reference.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

export interface RegistryOptions {
  /** registries (host[:port]) to reach over plain HTTP */
  insecureRegistries?: string[];
  /** an extra CA bundle (PEM) trusted besides the system's */
  caFile?: string;
  /** credentials; default: from the docker config file */
  credentials?: Credentials;
  retries?: number;
  /** per-request idle timeout */
  timeoutMs?: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const RETRYABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH']);

export function isRetryable(e: unknown): boolean {
  if (e instanceof RetryableStatus) return true;
  const code = (e as NodeJS.ErrnoException)?.code;
  return (code !== undefined && RETRYABLE.has(code)) || (e as Error)?.message === 'aborted';
}

class RetryableStatus extends Error {}

/** Retries `fn` on 5xx, resets and timeouts, with exponential backoff and jitter. */
export async function withRetries<T>(what: string, retries: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= retries || !isRetryable(e)) {
        if (isRetryable(e)) throw new TsrunError('REGISTRY', `${what}: ${(e as Error).message} (gave up after ${attempt + 1} attempts)`, { cause: e, hint: 'check that the registry is up and reachable' });
        throw e;
      }
      await sleep(Math.min(4000, 150 * 2 ** attempt) * (0.75 + Math.random() / 2));
    }
  }
}

interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

export class RegistryClient {
  readonly host: string;
  /** plain HTTP is allowed (loopback, --insecure-registry); https is used when the registry speaks it */
  readonly insecure: boolean;
  private scheme: Promise<'http' | 'https'> | undefined;
  private token: string | undefined;
  private basic: string | undefined;
  /** made on the first https request: loading TLS costs ~5 ms that a plain-HTTP registry never needs */
  private httpsAgentMade: https.Agent | undefined;
  private readonly httpsAgentOptions: https.AgentOptions;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly creds: Credentials | undefined;
  private readonly retries: number;
  private readonly timeoutMs: number;

  constructor(readonly registry: string, readonly repository: string, opts: RegistryOptions = {}) {
    this.host = registryHost(registry);
    const explicit = (opts.insecureRegistries ?? []).includes(registry);
    this.insecure = explicit || isLoopback(registry);
    this.creds = opts.credentials ?? getCredentials(registry);
    this.retries = opts.retries ?? 4;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    let ca: string[] | undefined;
    if (opts.caFile) {
      try {
        ca = [...rootCertificates, readFileSync(opts.caFile, 'utf8')];
      } catch (e) {
        throw new TsrunError('USAGE', `--ca-file ${opts.caFile}: ${(e as Error).message}`);
      }
    }
    // An explicitly insecure registry skips certificate checks (docker's meaning of the
    // flag); an implicit one (loopback) is still verified when it speaks TLS.
    this.httpsAgentOptions = { keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}), ...(explicit ? { rejectUnauthorized: false } : {}) };
  }

  private get httpsAgent(): https.Agent {
    return (this.httpsAgentMade ??= new https.Agent(this.httpsAgentOptions));
  }

  close(): void {
    this.httpsAgentMade?.destroy();
    this.httpAgent.destroy();
  }

  /**
   * https, or http for an insecure registry. docker tries TLS first; we ask over plain
   * HTTP first, because a TLS handshake costs more than the whole /v2/ round trip on
   * loopback, and a TLS server says so: Go's net/http answers a plain request with
   * "400 Client sent an HTTP request to an HTTPS server"; others drop the connection.
   */
  private pickScheme(): Promise<'http' | 'https'> {
    if (!this.insecure) return Promise.resolve('https');
    this.scheme ??= this.raw(`http://${this.host}/v2/`, {}, 0, 'GET', 5000).then(
      async (r) => {
        const body = (await readAll(r.body, 1 << 16).catch(() => Buffer.alloc(0))).toString('utf8');
        return r.status === 400 && /https/i.test(body) ? ('https' as const) : ('http' as const);
      },
      (e: unknown) => {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (code === 'ECONNRESET' || code.startsWith('HPE_') || code === 'EPROTO') return 'https' as const;
        this.scheme = undefined;
        throw e;
      },
    );
    return this.scheme;
  }

  private async url(path: string): Promise<string> {
    return `${await this.pickScheme()}://${this.host}${path}`;
  }

  private raw(url: string, headers: Record<string, string>, redirects = 0, method = 'GET', timeoutMs = this.timeoutMs): Promise<Resp> {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const sameHost = u.host === this.host;
    return new Promise<Resp>((resolve, reject) => {
      const req = mod.request(
        u,
        { method, headers: { 'User-Agent': 'tsrun/0.1', ...headers }, ...(sameHost ? { agent: u.protocol === 'https:' ? this.httpsAgent : this.httpAgent } : {}) },
        (res) => {
          const status = res.statusCode ?? 0;
          if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
            res.resume();
            if (redirects > 5) return reject(new TsrunError('REGISTRY', `${url}: too many redirects`));
            const next = new URL(res.headers.location, u).toString();
            // Blob redirects point at storage (S3, CDN) that must not see our registry token.
            const h = { ...headers };
            if (new URL(next).host !== this.host) delete h.Authorization;
            resolve(this.raw(next, h, redirects + 1, method));
            return;
          }
          res.setTimeout(this.timeoutMs, () => res.destroy(Object.assign(new Error(`no data for ${this.timeoutMs / 1000}s`), { code: 'ETIMEDOUT' })));
          resolve({ status, headers: res.headers, body: res });
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no response for ${timeoutMs / 1000}s`), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => {
        if (/certificate|ERR_TLS_CERT/i.test(`${(e as NodeJS.ErrnoException).code} ${e.message}`)) {
          reject(new TsrunError('REGISTRY', `TLS to ${this.host}: ${e.message}`, { hint: `pass the registry's CA with --ca-file, or use --insecure-registry ${this.registry} for a plain-HTTP registry` }));
        } else reject(e);
      });
      req.end();
    });
  }

  private authHeader(): Record<string, string> {
    if (this.token) return { Authorization: `Bearer ${this.token}` };
    if (this.basic) return { Authorization: `Basic ${this.basic}` };
    return {};
  }

  /** Answers a 401 challenge. Returns false when there is nothing more to try. */
  private async authenticate(challenge: string | undefined, scope: string): Promise<boolean> {
    if (!challenge) return false;
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === 'basic') {
      if (!this.creds || this.basic) return false;
      this.basic = Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64');
      return true;
    }
    if (scheme !== 'bearer' || !params.realm || this.token) return false;
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    u.searchParams.set('scope', params.scope ?? scope);
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.creds) headers.Authorization = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
    const res = await this.raw(u.toString(), headers);
    const body = await readAll(res.body);
    if (res.status === 401 || res.status === 403) return false;
    if (res.status !== 200) throw new TsrunError('REGISTRY', `token server ${u.host} answered ${res.status}`, { hint: 'check the registry\'s auth service' });
    const j = JSON.parse(body.toString('utf8')) as { token?: string; access_token?: string };
    this.token = j.token ?? j.access_token;
    return !!this.token;
  }

  /** GET with auth and retries; the caller consumes the body. Non-2xx becomes a TsrunError. */
  async get(path: string, accept?: string, what = path, method = 'GET'): Promise<Resp> {
    const scope = `repository:${this.repository}:pull`;
    return withRetries(`${this.registry}: ${what}`, this.retries, async () => {
      for (let round = 0; round < 3; round++) {
        const res = await this.raw(await this.url(path), { ...(accept ? { Accept: accept } : {}), ...this.authHeader() }, 0, method);
        if (res.status >= 200 && res.status < 300) return res;
        const text = (await readAll(res.body).catch(() => Buffer.alloc(0))).toString('utf8').slice(0, 300);
        if (res.status === 401) {
          if (await this.authenticate(res.headers['www-authenticate'], scope)) continue;
          throw new TsrunError('REGISTRY', `${this.registry}: authentication required for ${this.repository}${this.creds ? ' (the stored credentials were refused)' : ''}`, {
            hint: `log in first: tsrun login ${this.registry}`,
          });
        }
        if (res.status === 403) throw new TsrunError('REGISTRY', `${this.registry}: access to ${this.repository} denied`, { hint: `check your permissions, or log in as another user: tsrun login ${this.registry}` });
        if (res.status === 404) throw new TsrunError('IMAGE', `${this.registry}/${this.repository}: ${what} not found`, { hint: 'check the image name and tag' });
        if (res.status >= 500 || res.status === 429) throw new RetryableStatus(`HTTP ${res.status}${text ? ': ' + text.trim() : ''}`);
        throw new TsrunError('REGISTRY', `${this.registry}: ${what}: HTTP ${res.status}${text ? ': ' + text.trim() : ''}`);
      }
      throw new TsrunError('REGISTRY', `${this.registry}: authentication loop`, { hint: `tsrun login ${this.registry}` });
    });
  }

  /** Checks that the registry accepts our credentials (for `tsrun login`). */
  async ping(): Promise<void> {
    const res = await this.get('/v2/', undefined, 'API check');
    res.body.resume();
  }

  /** A manifest, verified against `reference` when that is a digest. */
  async getManifest(reference: string): Promise<{ manifest: Manifest; raw: Buffer; digest: string; mediaType: string }> {
    const res = await this.get(`/v2/${this.repository}/manifests/${reference}`, MANIFEST_ACCEPT, `manifest ${reference}`);
    const raw = await readAll(res.body, 4 << 20);
    const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    const claimed = res.headers['docker-content-digest'];
    const expected = reference.startsWith('sha256:') ? reference : typeof claimed === 'string' && claimed.startsWith('sha256:') ? claimed : undefined;
    if (expected && expected !== digest) {
      throw new TsrunError('IMAGE', `manifest ${reference}: digest mismatch: expected ${expected}, got ${digest}`, { hint: 'the registry served content that does not match its digest; nothing was stored' });
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(raw.toString('utf8')) as Manifest;
    } catch (e) {
      throw new TsrunError('IMAGE', `manifest ${reference} is not valid JSON: ${(e as Error).message}`);
    }
    const mediaType = manifest.mediaType ?? (res.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (manifest.schemaVersion !== 2) throw new TsrunError('IMAGE', `manifest ${reference}: schema version ${manifest.schemaVersion} is not supported`, { hint: 'only OCI and Docker schema 2 images can be pulled' });
    return { manifest, raw, digest, mediaType };
  }

  /** The blob's bytes as a stream; the caller verifies the digest while consuming it. */
  async getBlob(digest: string): Promise<{ body: Readable; length: number | undefined }> {
    const res = await this.get(`/v2/${this.repository}/blobs/${digest}`, undefined, `blob ${digest.slice(0, 19)}`);
    const len = res.headers['content-length'];
    return { body: res.body, length: len !== undefined ? Number(len) : undefined };
  }
}

export async function readAll(s: Readable, limit = 64 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > limit) {
      s.destroy();
      throw new TsrunError('REGISTRY', `response larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

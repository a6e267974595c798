// Registry credentials, kept where docker keeps them: $DOCKER_CONFIG/config.json
// (default ~/.docker/config.json), `auths` map, each entry's `auth` = base64(user:pass).
// Sharing docker's file means `docker login` and `tsrun login` see each other's logins.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { TsrunError } from '../errors.js';

export interface Credentials {
  username: string;
  password: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  [k: string]: unknown;
}

export function authFilePath(): string {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  return join(dir, 'config.json');
}

function readConfig(path: string): DockerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (e) {
    throw new TsrunError('REGISTRY', `${path} is not valid JSON: ${(e as Error).message}`, { hint: 'fix or remove the file, then run tsrun login again' });
  }
}

/** The keys docker may have used for a registry: Docker Hub's legacy URL, or host with and without a scheme. */
function keysFor(registry: string): string[] {
  if (registry === 'docker.io') return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

export function getCredentials(registry: string, path = authFilePath()): Credentials | undefined {
  const auths = readConfig(path).auths ?? {};
  for (const k of keysFor(registry)) {
    const e = auths[k];
    if (!e) continue;
    if (e.username && e.password) return { username: e.username, password: e.password };
    if (e.auth) {
      const plain = Buffer.from(e.auth, 'base64').toString('utf8');
      const i = plain.indexOf(':');
      if (i > 0) return { username: plain.slice(0, i), password: plain.slice(i + 1) };
    }
  }
  return undefined;
}

function writeConfig(path: string, cfg: DockerConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(cfg, null, '\t') + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

export function storeCredentials(registry: string, c: Credentials, path = authFilePath()): void {
  const cfg = readConfig(path);
  const auths = { ...(cfg.auths ?? {}) };
  for (const k of keysFor(registry)) delete auths[k];
  auths[keysFor(registry)[0]!] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
  writeConfig(path, { ...cfg, auths });
}

/** Returns false when there was nothing to remove. */
export function removeCredentials(registry: string, path = authFilePath()): boolean {
  const cfg = readConfig(path);
  const auths = { ...(cfg.auths ?? {}) };
  let found = false;
  for (const k of keysFor(registry)) {
    if (auths[k]) found = true;
    delete auths[k];
  }
  if (found) writeConfig(path, { ...cfg, auths });
  return found;
}

/** Parses a WWW-Authenticate challenge: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\S+)\s*(.*)$/.exec(header);
  const scheme = (m?.[1] ?? '').toLowerCase();
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m?.[2] ?? ''))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme, params };
}

// Docker-style image references: [host[:port]/]path[:tag][@digest].
// The grammar follows the distribution project's reference package (docker/distribution
// reference/regexp.go): a first component is a registry host only if it has a dot, a
// colon, or is "localhost"; otherwise the image lives on Docker Hub, and a single-name
// image is in "library/".
import { TsrunError } from '../errors.js';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';

export interface ImageRef {
  /** registry host[:port], e.g. docker.io, localhost:5000 */
  registry: string;
  /** repository path, e.g. library/busybox */
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

function bad(ref: string, why: string): TsrunError {
  return new TsrunError('IMAGE', `invalid image reference "${ref}": ${why}`, {
    hint: 'use NAME[:TAG][@sha256:DIGEST], e.g. busybox, busybox:1.36, localhost:5000/team/app:1.2',
  });
}

export function parseReference(input: string): ImageRef {
  const ref = input.trim();
  if (!ref) throw bad(input, 'it is empty');
  if (ref.length > 255 + 128 + 72) throw bad(input, 'it is too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      if (/^sha256:/i.test(digest)) throw bad(input, 'a sha256 digest is 64 lowercase hex digits');
      throw bad(input, `unsupported digest "${digest}" (only sha256 is supported)`);
    }
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `bad tag "${tag}" (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  if (!rest) throw bad(input, 'no repository name');
  const parts = rest.split('/');
  let registry = DEFAULT_REGISTRY;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    if (!HOST.test(first)) throw bad(input, `bad registry host "${first}"`);
    registry = first;
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DEFAULT_REGISTRY;
  for (const p of parts) {
    if (!p) throw bad(input, 'empty path component');
    if (p !== p.toLowerCase()) throw bad(input, 'repository names must be lowercase');
    if (!COMPONENT.test(p)) throw bad(input, `bad path component "${p}"`);
  }
  if (registry === DEFAULT_REGISTRY && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (registry.length + 1 + repository.length > 255) throw bad(input, 'the name is longer than 255 characters');
  if (!tag && !digest) tag = DEFAULT_TAG;
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** registry/repository */
export function refName(r: ImageRef): string {
  return `${r.registry}/${r.repository}`;
}

/** The canonical form: registry/repository[:tag][@digest]. */
export function formatReference(r: ImageRef): string {
  return `${refName(r)}${r.tag ? ':' + r.tag : ''}${r.digest ? '@' + r.digest : ''}`;
}

/** The short form docker shows: drops docker.io/ and library/. */
export function familiarName(r: Pick<ImageRef, 'registry' | 'repository'>): string {
  if (r.registry !== DEFAULT_REGISTRY) return `${r.registry}/${r.repository}`;
  return r.repository.startsWith('library/') ? r.repository.slice('library/'.length) : r.repository;
}

/** What to ask the registry for: the digest when pinned, else the tag. */
export function manifestReference(r: ImageRef): string {
  return r.digest ?? r.tag ?? DEFAULT_TAG;
}

/** The API endpoint host: Docker Hub's API is not at docker.io. */
export function registryHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
}

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

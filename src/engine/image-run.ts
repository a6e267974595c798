// The image half of `tsrun run IMAGE`: find or pull the image, apply docker's rules
// for its config (Entrypoint/Cmd/Env/WorkingDir/User) and make the container's overlay
// directories. The CLI's flags arrive as ImageRunOptions.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TsrunError } from '../errors.js';
import { tracer } from '../trace/tracer.js';
import { isAlive, procStartTime } from '../runtime/proc-scan.js';
import type { OverlayLayers } from '../overlay/mount.js';
import { parseReference, refName } from '../image/reference.js';
import { ImageStore } from '../image/store.js';
import { imageDefaults, resolveUserInLayers } from '../image/config.js';
import type { ImageDefaults } from './run-spec.js';

// pull.ts and registry.ts load node:https (and TLS) and the unpacker: import them only
// when the image must be fetched, so a run from the store does not pay for them.
const loadPull = (): Promise<typeof import('../image/pull.js')> => import('../image/pull.js');

export interface ImageRunOptions {
  pull?: string;
  platform?: string;
  entrypoint?: string;
  user?: string;
  rm: boolean;
  insecureRegistry: string[];
  caFile?: string;
}

/**
 * A `run --rm` whose tsrun was killed (kill -9) never got to remove its dirs. Its
 * overlay lived in the container's own mount namespace, so only the upper/work dirs
 * are left; they are removed once the owning tsrun is gone.
 */
function sweepDeadRmContainers(root: string): void {
  const base = join(root, 'containers');
  let ids: string[];
  try {
    ids = readdirSync(base);
  } catch {
    return;
  }
  for (const c of ids) {
    try {
      // A detached container (-d) is owned by the monitor, not by the tsrun that wrote
      // image.json and has exited since: only foreground runs are swept.
      const rec = join(base, c, 'config.json');
      if (existsSync(rec) && (JSON.parse(readFileSync(rec, 'utf8')) as { foreground?: boolean }).foreground !== true) continue;
      const meta = JSON.parse(readFileSync(join(base, c, 'image.json'), 'utf8')) as { rm?: boolean; owner?: { pid: number; start: number } };
      if (meta.rm && meta.owner && !isAlive(meta.owner.pid, meta.owner.start)) rmSync(join(base, c), { recursive: true, force: true });
    } catch {
      /* not ours, or being written */
    }
  }
}

export interface PreparedImageRun {
  rootfs: string;
  overlay: OverlayLayers;
  image: ImageDefaults;
  /** -u after name resolution: "uid:gid" */
  user: string;
  cleanup: () => void;
}

/** Finds or pulls the image, resolves its config, and makes the container's overlay dirs. */
export async function prepareImageRun(root: string, id: string, imageRef: string, command: string[], opts: ImageRunOptions): Promise<PreparedImageRun> {
  const store = new ImageStore(root);
  const policy = opts.pull ?? 'missing';
  if (!['always', 'missing', 'never'].includes(policy)) throw new TsrunError('USAGE', `--pull ${policy}: use always, missing or never`);
  let rec = policy === 'always' ? null : store.getImage(imageRef);
  if (rec && opts.platform) {
    const [os, arch, variant] = opts.platform.split('/');
    if (rec.platform.os !== os || rec.platform.architecture !== arch || (variant && rec.platform.variant !== variant)) rec = null;
  }
  if (rec && rec.layers.some((l) => !store.hasLayer(l))) {
    // A store damaged by hand, or an rmi racing us: fetch again rather than fail in mount(2).
    if (policy === 'never') throw new TsrunError('IMAGE', `image ${imageRef} is missing layers in the store`, { hint: `pull it again: tsrun pull ${imageRef}` });
    rec = null;
  }
  if (!rec) {
    if (policy === 'never') throw new TsrunError('IMAGE', `no such image: ${imageRef}`, { hint: `pull it first (tsrun pull ${imageRef}), or use --pull missing` });
    const { pullImage } = await loadPull();
    rec = await pullImage(store, imageRef, { insecureRegistries: opts.insecureRegistry, caFile: opts.caFile, platform: opts.platform, progress: process.stderr });
  }
  const lower = [...rec.layers].reverse().map((d) => store.layerPath(d));
  tracer.step('image', 'image', `${imageRef} -> ${rec.id}`, 'the image, found in the local store by name');
  tracer.step('image', 'layers', `${lower.length}, topmost first: ${lower.join(' ')}`, 'the overlay will stack these unpacked layers read-only, topmost first, under the container\'s own upper dir; they are shared, never copied');
  const defaults = imageDefaults(rec.config, { entrypoint: opts.entrypoint, command });
  const u = resolveUserInLayers(opts.user ?? defaults.user, lower);
  const env = [...(defaults.env ?? [])];
  if (u.home && !env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${u.home}`);
  sweepDeadRmContainers(root);
  const dir = join(root, 'containers', id);
  mkdirSync(join(root, 'containers'), { recursive: true, mode: 0o711 });
  mkdirSync(dir, { mode: 0o711 });
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(dir, d), { mode: 0o755 });
    const owner = { pid: process.pid, start: procStartTime(process.pid) ?? 0 };
    writeFileSync(join(dir, 'image.json'), JSON.stringify({ image: rec.id, ref: refName(parseReference(imageRef)), rm: opts.rm, owner }) + '\n');
  } catch (e) {
    cleanup();
    throw e;
  }
  return {
    rootfs: join(dir, 'merged'),
    overlay: { lower, upper: join(dir, 'upper'), work: join(dir, 'work') },
    image: { ...defaults, env, additionalGids: u.additionalGids },
    user: `${u.uid}:${u.gid}`,
    cleanup,
  };
}

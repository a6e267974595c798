// Image verbs: pull, images, rmi, tag, image inspect/prune/ls/rm, login, logout; and the
// image half of `tsrun run IMAGE`.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { resolvePaths } from '../runtime/state.js';
import type { GlobalOptions } from './main.js';
import { familiarName, parseReference } from '../image/reference.js';
import { ImageStore, type ImageRecord, hexOf, normalizeRef } from '../image/store.js';
import { authFilePath, getCredentials, removeCredentials, storeCredentials } from '../image/auth.js';
// pull.ts and registry.ts load node:https (and TLS) and the unpacker: import them only
// when a command needs the network, so `tsrun run --rootfs` does not pay for them.
const loadPull = (): Promise<typeof import('../image/pull.js')> => import('../image/pull.js');

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface RegistryCliOptions {
  insecureRegistry: string[];
  caFile?: string;
}

function addRegistryOptions(c: Command): Command {
  return c
    .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (localhost and 127.0.0.0/8 always are)', collect, [])
    .option('--ca-file <pem>', 'trust this CA for registry TLS, besides the system CAs');
}

function storeFor(cmd: Command): ImageStore {
  let root = cmd;
  while (root.parent) root = root.parent;
  return new ImageStore(resolvePaths(root.opts<GlobalOptions>().root).root);
}

function mustGet(store: ImageStore, idOrRef: string): ImageRecord {
  const rec = store.getImage(idOrRef);
  if (!rec) throw new TsrunError('IMAGE', `no such image: ${idOrRef}`, { hint: 'list images with: tsrun images' });
  return rec;
}

function ago(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return 'N/A';
  const units: [number, string][] = [[365 * 86400, 'year'], [30 * 86400, 'month'], [7 * 86400, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [n, u] of units) if (s >= n) { const k = Math.floor(s / n); return `${k} ${u}${k > 1 ? 's' : ''} ago`; }
  return 'Less than a minute ago';
}

function humanSize(n: number): string {
  // docker uses decimal units (go-units HumanSize)
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return `${v < 10 && i > 0 ? v.toFixed(2) : v < 100 && i > 0 ? v.toFixed(1) : Math.round(v)}${u[i]}`;
}

function splitTag(ref: string): { repository: string; tag: string } {
  const r = parseReference(ref);
  return { repository: familiarName(r), tag: r.tag ?? '<none>' };
}

function inspectJson(rec: ImageRecord): Record<string, unknown> {
  return {
    Id: rec.id,
    // docker shows the familiar forms (busybox:latest, not docker.io/library/busybox:latest)
    RepoTags: rec.repoTags.map(familiarRef),
    RepoDigests: rec.repoDigests.map(familiarRef),
    Created: rec.created,
    Architecture: rec.platform.architecture,
    Os: rec.platform.os,
    ...(rec.platform.variant ? { Variant: rec.platform.variant } : {}),
    Size: rec.size,
    Config: rec.config.config ?? {},
    RootFS: { Type: 'layers', Layers: rec.layers },
    Metadata: { ManifestDigest: rec.manifestDigest },
  };
}

export function registerImage(program: Command): void {
  const pull = (name: string, parent: Command): Command =>
    addRegistryOptions(
      parent
        .command(name)
        .description('download an image from a registry')
        .argument('<image>', 'NAME[:TAG][@DIGEST]')
        .option('--platform <os/arch[/variant]>', 'choose this platform from a multi-platform image')
        .option('-q, --quiet', 'print only the digest', false),
    ).action(async (image: string, opts: RegistryCliOptions & { platform?: string; quiet: boolean }, cmd: Command) => {
      const store = storeFor(cmd);
      store.cleanTmp();
      const { pullImage, pulledDigest } = await loadPull();
      const rec = await pullImage(store, image, {
        insecureRegistries: opts.insecureRegistry, caFile: opts.caFile, platform: opts.platform,
        progress: opts.quiet ? undefined : process.stdout,
      });
      if (opts.quiet) process.stdout.write(pulledDigest(rec, image) + '\n');
    });

  const list = (name: string, parent: Command): Command =>
    parent
      .command(name)
      .description('list images')
      .argument('[repository[:tag]]', 'only this repository (and tag)')
      .option('-q, --quiet', 'print only image ids', false)
      .option('--no-trunc', 'do not shorten ids')
      .option('--digests', 'show digests', false)
      .option('--format <fmt>', 'table (default) or json: one JSON object per line')
      .action((filter: string | undefined, opts: { quiet: boolean; trunc: boolean; digests: boolean; format?: string }, cmd: Command) => {
        const store = storeFor(cmd);
        // docker: `images busybox` lists every tag of busybox; `images busybox:1` just that one
        const want = filter ? parseReference(filter) : undefined;
        const tagGiven = filter !== undefined && /:[^/]*$/.test(filter);
        const rows: { Repository: string; Tag: string; ID: string; Digest: string; CreatedSince: string; CreatedAt: string; Size: string; VirtualSize: string }[] = [];
        for (const rec of store.listImages()) {
          const id = opts.trunc ? hexOf(rec.id).slice(0, 12) : rec.id;
          const tags = rec.repoTags.length ? rec.repoTags.map(splitTag) : [{ repository: rec.repoDigests[0] ? familiarName(parseReference(rec.repoDigests[0])) : '<none>', tag: '<none>' }];
          for (const t of tags) {
            if (want && (t.repository !== familiarName(want) || (tagGiven && t.tag !== want.tag))) continue;
            const dig = rec.repoDigests.find((d) => familiarName(parseReference(d)) === t.repository);
            rows.push({ Repository: t.repository, Tag: t.tag, ID: id, Digest: dig ? dig.slice(dig.indexOf('@') + 1) : '<none>', CreatedSince: ago(rec.created), CreatedAt: rec.created, Size: humanSize(rec.size), VirtualSize: humanSize(rec.size) });
          }
        }
        if (opts.quiet) {
          process.stdout.write([...new Set(rows.map((r) => r.ID))].map((x) => x + '\n').join(''));
          return;
        }
        if (opts.format === 'json' || opts.format === '{{json .}}') {
          process.stdout.write(rows.map((r) => JSON.stringify(r) + '\n').join(''));
          return;
        }
        if (opts.format && opts.format !== 'table') throw new TsrunError('USAGE', `--format ${opts.format}: use table or json`);
        const head = ['REPOSITORY', 'TAG', ...(opts.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
        const table = [head, ...rows.map((r) => [r.Repository, r.Tag, ...(opts.digests ? [r.Digest] : []), r.ID, r.CreatedSince, r.Size])];
        const widths = head.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
        process.stdout.write(table.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('') + '\n').join(''));
      });

  const rmi = (name: string, parent: Command): Command =>
    parent
      .command(name)
      .description('remove images (layers shared with other images stay)')
      .argument('<image...>')
      .option('-f, --force', 'remove even if a container uses it, and remove all its tags', false)
      .action(async (images: string[], opts: { force: boolean }, cmd: Command) => {
        const store = storeFor(cmd);
        let failed: unknown;
        for (const arg of images) {
          try {
            const rec = mustGet(store, arg);
            const byId = rec.id === arg || hexOf(rec.id).startsWith(arg.replace(/^sha256:/, ''));
            if (!byId && rec.repoTags.length > 1) {
              await store.untag(arg);
              process.stdout.write(`Untagged: ${familiarRef(normalizeRef(arg))}\n`);
              continue;
            }
            if (byId && rec.repoTags.length > 1 && !opts.force) {
              throw new TsrunError('IMAGE', `image ${hexOf(rec.id).slice(0, 12)} is referenced in multiple repositories`, { hint: 'remove it by name, or force with rmi -f' });
            }
            const r = await store.removeImage(rec.id, { force: opts.force });
            for (const t of r.untagged) process.stdout.write(`Untagged: ${familiarRef(t)}\n`);
            for (const d of r.deleted) process.stdout.write(`Deleted: ${d}\n`);
          } catch (e) {
            if (images.length === 1) throw e;
            process.stderr.write(`tsrun: ${(e as Error).message}\n`);
            failed = e;
          }
        }
        if (failed) process.exitCode = 1;
      });

  const tag = (name: string, parent: Command): Command =>
    parent
      .command(name)
      .description('give an image another name')
      .argument('<source>')
      .argument('<target>')
      .action(async (source: string, target: string, _o: unknown, cmd: Command) => {
        const store = storeFor(cmd);
        const rec = mustGet(store, source);
        if (parseReference(target).digest) throw new TsrunError('USAGE', `tag ${target}: a tag cannot contain a digest`);
        await store.tag(target, rec.id);
      });

  const inspect = (parent: Command): Command =>
    parent
      .command('inspect')
      .description('show an image\'s record as JSON')
      .argument('<image...>')
      .option('-f, --format <fmt>', 'json (default)')
      .action((images: string[], _o: unknown, cmd: Command) => {
        const store = storeFor(cmd);
        const out = images.map((i) => inspectJson(mustGet(store, i)));
        process.stdout.write(JSON.stringify(out, null, 4) + '\n');
      });

  const prune = (parent: Command): Command =>
    parent
      .command('prune')
      .description('remove dangling images (no tag, no container); -a: every unused image')
      .option('-a, --all', 'remove every image no container uses', false)
      .option('-f, --force', 'do not prompt (tsrun never prompts)', false)
      .action(async (opts: { all: boolean }, cmd: Command) => {
        const store = storeFor(cmd);
        store.cleanTmp();
        let n = 0;
        for (const rec of store.listImages()) {
          if (!opts.all && rec.repoTags.length) continue;
          if (store.containersUsing(rec.id).length) continue;
          const r = await store.removeImage(rec.id);
          for (const t of r.untagged) process.stdout.write(`untagged: ${familiarRef(t)}\n`);
          for (const d of r.deleted) process.stdout.write(`deleted: ${d}\n`);
          n++;
        }
        process.stdout.write(`Removed ${n} image(s)\n`);
      });

  pull('pull', program);
  list('images', program);
  rmi('rmi', program);
  tag('tag', program);
  const image = program.command('image').description('manage images');
  pull('pull', image);
  list('ls', image);
  rmi('rm', image);
  tag('tag', image);
  inspect(image);
  prune(image);

  addRegistryOptions(
    program
      .command('login')
      .description(`log in to a registry (credentials are kept in ${'$DOCKER_CONFIG/config.json'}, like docker)`)
      .argument('<server>', 'registry host[:port]')
      .option('-u, --username <user>')
      .option('-p, --password <password>')
      .option('--password-stdin', 'read the password from stdin', false),
  ).action(async (server: string, opts: RegistryCliOptions & { username?: string; password?: string; passwordStdin: boolean }) => {
    const registry = parseReference(`${server.replace(/^https?:\/\//, '').replace(/\/.*$/, '')}/x`).registry;
    let password = opts.password;
    if (opts.passwordStdin) password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
    if (!opts.username || password === undefined) throw new TsrunError('USAGE', 'login needs --username and a password (--password or --password-stdin)');
    const { RegistryClient } = await import('../image/registry.js');
    const client = new RegistryClient(registry, 'library/x', { insecureRegistries: opts.insecureRegistry, caFile: opts.caFile, credentials: { username: opts.username, password }, retries: 1 });
    try {
      await client.ping();
    } catch (e) {
      if (e instanceof TsrunError && e.code === 'REGISTRY' && /authentication|denied/.test(e.message)) throw new TsrunError('REGISTRY', `login to ${registry} failed: the registry refused the username or password`);
      throw e;
    } finally {
      client.close();
    }
    storeCredentials(registry, { username: opts.username, password });
    process.stdout.write(`Login Succeeded (credentials saved in ${authFilePath()})\n`);
  });

  program
    .command('logout')
    .description('forget the credentials for a registry')
    .argument('<server>')
    .action((server: string) => {
      const registry = parseReference(`${server.replace(/^https?:\/\//, '').replace(/\/.*$/, '')}/x`).registry;
      if (!getCredentials(registry)) process.stdout.write(`Not logged in to ${registry}\n`);
      else {
        removeCredentials(registry);
        process.stdout.write(`Removing login credentials for ${registry}\n`);
      }
    });
}

function familiarRef(norm: string): string {
  const r = parseReference(norm);
  return `${familiarName(r)}${r.tag ? ':' + r.tag : ''}${r.digest ? '@' + r.digest : ''}`;
}

// ---- tsrun run IMAGE: its flags (src/engine/image-run.ts does the work) ----

export function addImageRunOptions(c: Command): Command {
  return addRegistryOptions(c)
    .option('--pull <policy>', 'pull the image: always, missing (default) or never')
    .option('--platform <os/arch[/variant]>', 'platform of the image to pull')
    .option('--entrypoint <cmd>', 'override the image\'s entrypoint ("" clears it)');
}

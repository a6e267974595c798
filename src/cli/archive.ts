// Archive verbs: load (docker-archive or oci-archive), save (oci-archive), import (a
// rootfs tarball as a one-layer image). Like docker, load and save use stdin/stdout when
// no file is given.
import { createWriteStream, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { TsrunError } from '../errors.js';
import { resolvePaths } from '../runtime/state.js';
import { importRootfs, loadArchive, saveArchive } from '../image/archive.js';
import { familiarName, parseReference } from '../image/reference.js';
import { ImageStore } from '../image/store.js';
import type { GlobalOptions } from './main.js';

function storeFor(cmd: Command): ImageStore {
  let root = cmd;
  while (root.parent) root = root.parent;
  return new ImageStore(resolvePaths(root.opts<GlobalOptions>().root).root);
}

function shortRef(ref: string): string {
  const r = parseReference(ref);
  return `${familiarName(r)}${r.tag ? ':' + r.tag : ''}${r.digest ? '@' + r.digest : ''}`;
}

export function registerArchive(program: Command): void {
  program
    .command('load')
    .description('load images from a docker-archive or oci-archive tarball (gzip/zstd allowed)')
    .option('-i, --input <file>', 'read from this file instead of stdin')
    .option('-q, --quiet', 'print only the loaded image ids', false)
    .action(async (opts: { input?: string; quiet: boolean }, cmd: Command) => {
      const store = storeFor(cmd);
      store.cleanTmp();
      let file = opts.input;
      let spool: string | undefined;
      if (!file) {
        if (process.stdin.isTTY) throw new TsrunError('USAGE', 'load: no input', { hint: 'give the archive with -i FILE, or pipe it to stdin' });
        // The archive is read by offset, so stdin is spooled to the store's staging area first.
        spool = store.tempPath('stdin');
        await pipeline(process.stdin, createWriteStream(spool, { mode: 0o600 }));
        file = spool;
      }
      try {
        for (const r of await loadArchive(store, file)) {
          if (opts.quiet) process.stdout.write(`${r.id}\n`);
          else if (r.repoTags.length) for (const t of r.repoTags) process.stdout.write(`Loaded image: ${shortRef(t)}\n`);
          else process.stdout.write(`Loaded image ID: ${r.id}\n`);
        }
      } finally {
        if (spool) rmSync(spool, { force: true });
      }
    });

  program
    .command('save')
    .description('write images to an oci-archive tarball')
    .argument('<image...>', 'images by name or id')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (images: string[], opts: { output?: string }, cmd: Command) => {
      const store = storeFor(cmd);
      if (!opts.output && process.stdout.isTTY) {
        throw new TsrunError('USAGE', 'save: refusing to write an archive to a terminal', { hint: 'give a file with -o FILE, or redirect stdout' });
      }
      await saveArchive(store, images, opts.output ?? process.stdout);
    });

  program
    .command('import')
    .description('create a one-layer image from a rootfs tarball (plain, gzip or zstd)')
    .argument('<file>', 'the rootfs tarball')
    .argument('[reference]', 'NAME[:TAG] for the new image')
    .option('-m, --message <text>', 'a comment for the image history')
    .action(async (file: string, ref: string | undefined, opts: { message?: string }, cmd: Command) => {
      const store = storeFor(cmd);
      store.cleanTmp();
      const rec = await importRootfs(store, file, ref, { message: opts.message });
      process.stdout.write(`${rec.id}\n`);
    });
}

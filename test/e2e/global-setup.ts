// Runs once before the e2e project. The e2e suite drives the real bin/tsrun as root
// against the real kernel; without root or busybox-static every test would fail for
// the same uninteresting reason, so say so once, clearly, and stop.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { findBusybox } from '../helpers/rootfs.js';
import { REPO_ROOT } from '../helpers/tsrun.js';

export default function setup(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the e2e tests create namespaces and mounts: run them as root (sudo npx vitest run --project e2e)');
  }
  if (!findBusybox()) {
    throw new Error('the e2e tests build their rootfs from busybox-static: apt-get install -y busybox-static');
  }
  // The normal test command (npm test) builds first; a bare `vitest run --project e2e`
  // on a fresh checkout would otherwise fail on every test with "cannot find dist/tsrun.cjs".
  const dist = ['dist/tsrun.cjs', 'dist/setup-worker.cjs'];
  if (!dist.every((f) => existsSync(`${REPO_ROOT}/${f}`))) {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO_ROOT, stdio: 'inherit' });
    for (const f of dist) if (!existsSync(`${REPO_ROOT}/${f}`)) throw new Error(`the build did not produce ${f}`);
  }
}

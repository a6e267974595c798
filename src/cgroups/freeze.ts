// Pausing a container: the cgroup freezer stops every task in the cgroup where it
// stands, and nothing in it runs until it is thawed. v1 has a freezer controller
// (freezer.state FROZEN/THAWED); v2 has cgroup.freeze (1/0) in every non-root cgroup.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TsrunError } from '../errors.js';
import type { Kernel } from '../linux/kernel.js';
import { relativeCgroupPath } from './ctl.js';
import { detectCgroups } from './detect.js';

interface FreezerFile {
  file: string;
  frozen: string;
  thawed: string;
}

function freezerFile(cgroupsPath: string): FreezerFile | null {
  const layout = detectCgroups();
  const rel = relativeCgroupPath(cgroupsPath);
  if (layout.choice.freezer === 'v1' && layout.v1.freezer) return { file: join(layout.v1.freezer, rel, 'freezer.state'), frozen: 'FROZEN', thawed: 'THAWED' };
  if (layout.v2) return { file: join(layout.v2.mount, rel, 'cgroup.freeze'), frozen: '1', thawed: '0' };
  return null;
}

export function setFrozen(k: Kernel, cgroupsPath: string, on: boolean): void {
  const f = freezerFile(cgroupsPath);
  if (!f || !existsSync(f.file)) throw new TsrunError('CGROUP', 'this container has no freezer cgroup', { hint: 'pause needs the v1 freezer or cgroup v2' });
  k.writeFile(f.file, on ? f.frozen : f.thawed, on ? 'freeze every task of the container (cgroup freezer)' : 'thaw the container');
}

export function isFrozen(cgroupsPath: string): boolean {
  const f = freezerFile(cgroupsPath);
  try {
    return f !== null && readFileSync(f.file, 'utf8').trim() === f.frozen;
  } catch {
    return false;
  }
}

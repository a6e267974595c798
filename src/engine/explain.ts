// What the kernel says about a running container, next to what it says about the host:
// the data behind `tsrun explain`. Everything is read from /proc, the kernel's own
// account, not from tsrun's state (which only says which pid to look at).
import { readFileSync, readlinkSync } from 'node:fs';
import { capNames } from '../security/capabilities.js';
import { TsrunError } from '../errors.js';
import type { Paths } from '../runtime/state.js';
import { observe, readRecord, resolveContainer } from './containers.js';

const NS = ['pid', 'mnt', 'net', 'uts', 'ipc', 'cgroup', 'user', 'time'] as const;

export interface Explanation {
  id: string;
  pid: number;
  namespaces: Array<{ type: string; host: string | null; container: string | null; own: boolean }>;
  cgroup: { host: string[]; container: string[] };
  mounts: Array<{ mountPoint: string; fstype: string; source: string; options: string }>;
  capabilities: Record<'CapInh' | 'CapPrm' | 'CapEff' | 'CapBnd' | 'CapAmb', string[]>;
  noNewPrivs: boolean;
  seccomp: { mode: 'disabled' | 'strict' | 'filter' | 'unknown'; filters: number };
  uidMap: string;
  gidMap: string;
}

/** Finds a running container by name, id or unique id prefix, as every docker verb does. */
export function findRunning(p: Paths, ref: string): { id: string; pid: number } {
  const id = resolveContainer(p, ref);
  const o = observe(p, readRecord(p, id));
  if (o.status !== 'running' && o.status !== 'paused') throw new TsrunError('STATE', `container ${id.slice(0, 12)} is not running (${o.status})`);
  return { id, pid: o.pid };
}

function link(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** /proc/PID/mountinfo fields: ... mount point (5th), then after " - ": fstype, source, super options. */
export function parseMountinfo(text: string): Explanation['mounts'] {
  return text.trim().split('\n').filter(Boolean).map((line) => {
    const [left, right = ''] = line.split(' - ');
    const f = left!.split(' ');
    const [fstype = '', source = '', superOpts = ''] = right.split(' ');
    return { mountPoint: f[4] ?? '', fstype, source, options: `${f[5] ?? ''}${superOpts ? ' ' + superOpts : ''}` };
  });
}

export function explain(id: string, pid: number): Explanation {
  const status = read(`/proc/${pid}/status`);
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
  const caps = (name: string): string[] => capNames(BigInt('0x' + (field(name) || '0')));
  const seccompMode = field('Seccomp');
  return {
    id,
    pid,
    namespaces: NS.map((type) => {
      // tsrun's own namespaces are the host's: its main thread never leaves them.
      const host = link(`/proc/self/ns/${type}`);
      const container = link(`/proc/${pid}/ns/${type}`);
      return { type, host, container, own: host !== null && container !== null && host !== container };
    }),
    cgroup: { host: read('/proc/self/cgroup').trim().split('\n'), container: read(`/proc/${pid}/cgroup`).trim().split('\n') },
    mounts: parseMountinfo(read(`/proc/${pid}/mountinfo`)),
    capabilities: { CapInh: caps('CapInh'), CapPrm: caps('CapPrm'), CapEff: caps('CapEff'), CapBnd: caps('CapBnd'), CapAmb: caps('CapAmb') },
    noNewPrivs: field('NoNewPrivs') === '1',
    seccomp: { mode: seccompMode === '0' ? 'disabled' : seccompMode === '1' ? 'strict' : seccompMode === '2' ? 'filter' : 'unknown', filters: Number(field('Seccomp_filters') || 0) },
    uidMap: read(`/proc/${pid}/uid_map`).trim(),
    gidMap: read(`/proc/${pid}/gid_map`).trim(),
  };
}

/** The same, for people: each section with one line saying what the kernel mechanism is. */
export function renderExplanation(e: Explanation): string {
  const out: string[] = [];
  out.push(`Container ${e.id.slice(0, 12)}, process ${e.pid} on the host (PID 1 inside)`, '');
  out.push('Namespaces: which kernel objects the container shares with the host (same inode) or has its own');
  out.push(`  ${'type'.padEnd(8)}${'host'.padEnd(26)}${'container'.padEnd(26)}`);
  for (const n of e.namespaces) out.push(`  ${n.type.padEnd(8)}${(n.host ?? '-').padEnd(26)}${(n.container ?? '-').padEnd(26)}${n.own ? 'own' : 'shared with the host'}`);
  out.push('', 'cgroups: the resource-control groups the kernel counts and limits it in');
  for (const line of e.cgroup.container) out.push(`  ${line}`);
  out.push('', `Mounts: the container's own mount table (${e.mounts.length} entries; the host's is not visible to it)`);
  for (const m of e.mounts) out.push(`  ${m.mountPoint.padEnd(24)} ${m.fstype.padEnd(9)} ${m.source.padEnd(10)} ${m.options}`);
  out.push('', 'Capabilities: the root powers the kernel still grants it');
  for (const [k, v] of Object.entries(e.capabilities)) out.push(`  ${k}  ${v.length ? v.map((c) => c.replace(/^CAP_/, '')).join(' ') : '(none)'}`);
  out.push('', `no_new_privs: ${e.noNewPrivs ? 'set: setuid binaries cannot raise privileges' : 'not set'}`);
  out.push(`seccomp: ${e.seccomp.mode}${e.seccomp.mode === 'filter' ? ` (${e.seccomp.filters} filter${e.seccomp.filters === 1 ? '' : 's'} on its system calls)` : ''}`);
  out.push('', `uid/gid maps (inside -> outside, count): ${e.uidMap.replace(/\s+/g, ' ')} / ${e.gidMap.replace(/\s+/g, ' ')}${e.uidMap.startsWith('0') && e.uidMap.includes('4294967295') ? ' (no user namespace: root inside is root outside)' : ''}`);
  return out.join('\n') + '\n';
}

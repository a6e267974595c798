// The subset of the OCI runtime-spec (config.json, 1.x) that tsrun reads.
// https://github.com/opencontainers/runtime-spec/blob/main/config.md

export interface Spec {
  ociVersion: string;
  process?: ProcessSpec;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: MountSpec[];
  hooks?: Record<string, HookSpec[]>;
  annotations?: Record<string, string>;
  linux?: LinuxSpec;
}

export interface ProcessSpec {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[]; username?: string };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: CapabilitiesSpec;
  rlimits?: Array<{ type: string; soft: number; hard: number }>;
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}

export interface CapabilitiesSpec {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface MountSpec {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface HookSpec {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export type NamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';

export interface LinuxSpec {
  namespaces?: Array<{ type: NamespaceType; path?: string }>;
  uidMappings?: Array<{ containerID: number; hostID: number; size: number }>;
  gidMappings?: Array<{ containerID: number; hostID: number; size: number }>;
  devices?: DeviceSpec[];
  cgroupsPath?: string;
  resources?: Record<string, unknown>;
  rootfsPropagation?: string;
  seccomp?: Record<string, unknown>;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
}

export interface DeviceSpec {
  type: 'c' | 'b' | 'u' | 'p';
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

// What the main thread and the setup worker say to each other.
import type { SerializedError } from '../errors.js';
import type { SpawnStdio } from '../linux/kernel.js';
import type { MountSpec, Spec } from '../spec/types.js';
import type { TraceMode } from '../trace/tracer.js';
import type { OverlayLayers } from '../overlay/mount.js';

export interface SetupPlan {
  /** create: new container; exec: join a running container's namespaces */
  mode: 'create' | 'exec';
  spec: Spec;
  /** absolute host path of the rootfs (create only); with `overlay`, the empty dir it is mounted on */
  rootfs: string;
  /** an image's layers, mounted as overlayfs at `rootfs` inside the container's mount namespace */
  overlay?: OverlayLayers;
  bundle: string;
  /** tsrun's state directory for this container; holds exec.fifo, the start gate */
  stateDir: string;
  /** for exec: the container's PID 1, whose namespaces are joined */
  joinPid?: number;
  tty: { rows: number; cols: number } | null;
  stdio: SpawnStdio[];
  preserveFds: number;
  trace: TraceMode;
  color: boolean;
  lastCap: number;
  /** cgroup v1 `tasks` files: the setup thread must be in them before it unshares its cgroup namespace (issue 4) */
  cgroupThreadFiles?: string[];
  /** the thread the main thread already moved into cgroupThreadFiles; the setup thread moves itself if that is not it */
  movedTid?: number;
  /**
   * launch() adds it: one Int32 the setup thread sets to 1 when it fails. The main
   * thread looks for the child synchronously (its messages cannot arrive meanwhile),
   * and stops looking when a failed posix_spawn means there will be none.
   */
  failed?: SharedArrayBuffer;
}

export type WorkerMessage =
  /** sent just before posix_spawn: the child appears and blocks at the gate */
  /** setupTid: the setup thread's own task id (it may sit in the container's v1 cgroups) */
  | { t: 'spawning'; deferred: MountSpec[]; ptyMaster: number | null; setupTid: number }
  /** a pre-started worker has loaded koffi and waits for its plan */
  | { t: 'ready' }
  | { t: 'spawned'; pid: number }
  | { t: 'error'; error: SerializedError };

export const GATE_NAME = 'exec.fifo';

// The container's rootfs as an overlay: the image's layers (read-only lowerdirs, top
// layer first) plus the container's own upper and work dirs. It is mounted by the
// setup thread inside the container's private mount namespace, so it disappears with
// the container, even when tsrun is killed: no host mount to leak.
import type { Kernel } from '../linux/kernel.js';

export interface OverlayLayers {
  /** lowerdirs, topmost first (overlayfs order) */
  lower: string[];
  upper: string;
  work: string;
}

export function mountOverlay(k: Kernel, target: string, layers: OverlayLayers): void {
  const data = `lowerdir=${layers.lower.join(':')},upperdir=${layers.upper},workdir=${layers.work}`;
  k.mount('overlay', target, 'overlay', 0, data, `stack ${layers.lower.length} image layer(s) under the container's own upper dir`);
}

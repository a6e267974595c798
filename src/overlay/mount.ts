// The container's rootfs as an overlay: the image's layers (read-only lowerdirs, top
// layer first) plus the container's own upper and work dirs. It is mounted by the
// setup thread inside the container's private mount namespace, so it disappears with
// the container, even when tsrun is killed: no host mount to leak.
import { type Kernel, KernelError } from '../linux/kernel.js';
import { TsrunError } from '../errors.js';

export interface OverlayLayers {
  /** lowerdirs, topmost first (overlayfs order) */
  lower: string[];
  upper: string;
  work: string;
}

// mount(2) copies at most one page of option data (copy_mount_options); a longer string
// is cut off and overlayfs fails on a truncated path. The NUL counts too.
const PAGE_LIMIT = 4095;

export function overlayOptions(layers: OverlayLayers): string {
  return `lowerdir=${layers.lower.join(':')},upperdir=${layers.upper},workdir=${layers.work}`;
}

/** True when the classic one-string mount cannot carry these paths. */
export function needsNewMountApi(layers: OverlayLayers): boolean {
  return Buffer.byteLength(overlayOptions(layers)) > PAGE_LIMIT || layers.lower.some((l) => /[:,]/.test(l));
}

export function mountOverlay(k: Kernel, target: string, layers: OverlayLayers): void {
  if (!needsNewMountApi(layers)) {
    k.mount('overlay', target, 'overlay', 0, overlayOptions(layers), `stack ${layers.lower.length} image layer(s) under the container's own upper dir`);
    return;
  }
  // The new mount API takes one option per fsconfig(2) call, each with its own page,
  // and since Linux 6.8 overlayfs accepts "lowerdir+" to append one layer per call, so
  // the number of layers is no longer bounded by the option string's size.
  const fsfd = k.fsopen('overlay', `${layers.lower.length} layers do not fit in one page of mount options: build the overlay one option at a time`);
  let mfd = -1;
  try {
    k.fsconfigString(fsfd, 'source', 'overlay', 'the name mount(8) shows for it');
    try {
      for (const l of layers.lower) k.fsconfigString(fsfd, 'lowerdir+', l, 'append the next lower layer (topmost first)');
    } catch (e) {
      if (e instanceof KernelError && e.code === 'EINVAL') {
        throw new TsrunError('KERNEL_FEATURE', `this image has ${layers.lower.length} layers, too many for one page of overlay mount options, and this kernel's overlayfs does not accept "lowerdir+"`, { hint: 'Linux 6.8 or newer stacks any number of layers; or flatten the image', cause: e });
      }
      throw e;
    }
    k.fsconfigString(fsfd, 'upperdir', layers.upper, 'the container\'s own writable layer');
    k.fsconfigString(fsfd, 'workdir', layers.work, 'overlayfs scratch space on the upper dir\'s filesystem');
    k.fsconfigCreate(fsfd, 'create the overlay superblock');
    mfd = k.fsmount(fsfd, 0, 'a detached overlay mount');
    k.moveMount(mfd, -100, target, 'attach the overlay at the rootfs path in the container\'s mount namespace');
  } finally {
    if (mfd >= 0) k.close(mfd);
    k.close(fsfd);
  }
}

#!/usr/bin/env bash
# Installs tsrun on a Debian/Ubuntu host: the system packages it uses, its npm
# dependencies, the build, a `tsrun` command in /usr/local/bin, and a small busybox
# root filesystem to try it on (/var/lib/tsrun/rootfs/busybox), imported as the local
# image `busybox` (there is no registry to pull it from on a machine without internet).
# Run as root from the repository: sudo bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "install.sh: run as root (sudo bash scripts/install.sh)" >&2; exit 1; fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "install.sh: tsrun needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "  Debian/Ubuntu: install the nodejs 20 package from NodeSource, or use nvm." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# busybox-static: the sample rootfs; util-linux: mount(8) for /proc on kernels before 6.15;
# iproute2, nftables, conntrack: the default bridge network (ip, nft, conntrack); tini: run --init.
apt-get install -y -qq --no-install-recommends busybox-static util-linux iproute2 nftables conntrack tini >/dev/null

npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
ln -sf "$PWD/bin/tsrun" /usr/local/bin/tsrun

# A root filesystem made of one static binary: busybox and a link per applet.
rootfs=/var/lib/tsrun/rootfs/busybox
if [ ! -x "$rootfs/bin/busybox" ]; then
  mkdir -p "$rootfs"/{bin,dev,proc,sys,etc,tmp,root}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
fi
# The same files as a one-layer image named busybox (docker.io/library/busybox:latest).
if ! tsrun image inspect busybox >/dev/null 2>&1; then
  tarball=$(mktemp /tmp/tsrun-busybox.XXXXXX.tar)
  tar -C "$rootfs" -cf "$tarball" .
  tsrun import "$tarball" busybox >/dev/null
  rm -f "$tarball"
fi
echo "tsrun installed: $(command -v tsrun); try: sudo tsrun run -it busybox sh"

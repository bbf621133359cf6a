#!/usr/bin/env bash
# nbdkit-zram: build (or find cached) a minimal guest for the nbd-client test.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# Usage: mkguest.sh CACHEDIR PLUGIN MEMHOG [NBDZRAMCTL]
# (SWAPCHURN in the environment: the swapchurn workload, for zt.stale.)
#
# Prints two lines, "kernel PATH" and "initrd PATH", or exits 77 with a
# reason on stderr when a guest cannot be made here (no Debian kernel to be
# had, a tool missing), 1 on a real error.
#
# The kernel is Debian 12's own (linux-image-*-amd64), downloaded once with
# apt-get download and unpacked under CACHEDIR/kernel-VERSION (or taken from
# /boot when the host runs a Debian kernel that has nbd.ko).  The initramfs
# holds busybox-static, nbd-client, nbdkit, the plugin under test, util-linux's
# swap tools and fstrim, e2fsprogs, the memhog, the shared libraries all of
# them link to (copied from this host, which has them from Debian packages),
# the few kernel modules needed (nbd, ext4, zram with lz4 as the reference
# for swap, and what they depend on) and
# tests/guest/init.  It is cached under CACHEDIR/initrd-HASH, HASH covering
# every input, so a rebuilt plugin or an edited init gives a new one.
set -eu

cache=$1 plugin=$2 memhog=$3 ctltool=${4:-}
here=$(cd "$(dirname "$0")" && pwd)

skip () { echo "mkguest: $*" >&2; exit 77; }
die ()  { echo "mkguest: $*" >&2; exit 1; }

mkdir -p "$cache"

# --- the kernel ------------------------------------------------------------

find_kernel () {
  local r ver d
  # A Debian kernel on this host with nbd.ko: use it as it is.
  r=$(uname -r)
  if [ -f "/boot/vmlinuz-$r" ] && [ -r "/boot/vmlinuz-$r" ] &&
     [ -f "/lib/modules/$r/kernel/drivers/block/nbd.ko" ]; then
    kernel=/boot/vmlinuz-$r moddir=/lib/modules/$r
    return 0
  fi
  # Otherwise Debian's current amd64 kernel package, downloaded once.
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  if [ -z "$pkg" ]; then
    # No apt lists: fall back to any kernel already unpacked in the cache.
    d=$(ls -d "$cache"/kernel-*/ 2>/dev/null | tail -n1)
    [ -n "$d" ] || skip "no Debian kernel: apt-cache knows no linux-image-amd64 (run apt-get update)"
    pkg=$(basename "$d"); pkg=${pkg#kernel-}
  fi
  d=$cache/kernel-$pkg
  if [ ! -f "$d/done" ]; then
    command -v dpkg-deb >/dev/null || skip "no dpkg-deb to unpack the kernel"
    rm -rf "$d" "$d.tmp"
    mkdir -p "$d.tmp"
    ( cd "$d.tmp" && apt-get download "$pkg" >/dev/null 2>&1 ) ||
      skip "apt-get download $pkg failed"
    # Only the kernel image and the module directories we draw from.
    dpkg-deb --fsys-tarfile "$d.tmp"/*.deb |
      tar -x -C "$d.tmp" --wildcards './boot/vmlinuz-*' \
        './lib/modules/*/kernel/drivers/block/*' './lib/modules/*/kernel/fs/*' \
        './lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/crypto/*' \
        './lib/modules/*/kernel/arch/x86/crypto/*' './lib/modules/*/kernel/mm/*' ||
      die "cannot unpack $pkg"
    rm -f "$d.tmp"/*.deb
    mv "$d.tmp" "$d"
    touch "$d/done" "$d/done-mm"
  fi
  # Caches unpacked before zram was in the guest lack mm/ (zsmalloc.ko):
  # add it beside what is there, which other runs may be using.
  if [ ! -f "$d/done-mm" ]; then
    rm -rf "$d.mm"
    mkdir -p "$d.mm"
    ( cd "$d.mm" && apt-get download "$pkg" >/dev/null 2>&1 ) ||
      skip "apt-get download $pkg failed"
    dpkg-deb --fsys-tarfile "$d.mm"/*.deb |
      tar -x -C "$d" --wildcards './lib/modules/*/kernel/mm/*' ||
      die "cannot unpack mm/ of $pkg"
    rm -rf "$d.mm"
    touch "$d/done-mm"
  fi
  kernel=$(ls "$d"/boot/vmlinuz-* | head -n1)
  moddir=$(ls -d "$d"/lib/modules/*/ | head -n1)
  moddir=${moddir%/}
}
find_kernel
[ -f "$kernel" ] || die "no kernel image"

# Modules to load, dependencies first.  The dependency list is read from each
# module's .modinfo section, so kmod is not needed on the host.
modfile () {                    # modfile NAME -> path of NAME.ko
  local n=$1 alt
  alt=$(echo "$n" | tr '_-' '-_')
  find "$moddir/kernel" \( -name "$n.ko" -o -name "$alt.ko" \) | head -n1
}
modorder=()
add_module () {
  local f dep
  f=$(modfile "$1")
  [ -n "$f" ] || die "module $1 not found under $moddir"
  for m in "${modorder[@]}"; do [ "$m" = "$f" ] && return 0; done
  for dep in $(tr '\0' '\n' < "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  modorder+=("$f")
}
# crc32c for ext4's metadata checksums: the generic one is enough.
for m in nbd crc32c_generic ext4; do add_module "$m"; done
# zram and lz4 (which the crypto API would load on demand, with a modprobe
# this guest does not have) for kernel zram, the reference of zt.stale;
# where the kernel has them built in there is no module to add.
for m in zram lz4; do [ -z "$(modfile "$m")" ] || add_module "$m"; done

# --- the initramfs ------------------------------------------------------------

need () { command -v "$1" 2>/dev/null || skip "$1 not installed on the host (see tests/guest/packages.txt)"; }
busybox=$(need busybox)
ldd "$busybox" >/dev/null 2>&1 && skip "busybox is not static (install busybox-static)"
bins=( "$(need nbdkit)" "$(need nbd-client)" "$(need mkswap)" "$(need swapon)"
       "$(need swapoff)" "$(need fstrim)" "$(need mke2fs)" "$(need e2fsck)" )
command -v cpio >/dev/null || skip "cpio not installed"

unit=$here/../../contrib/systemd/nbdkit-zram@.service
unitconf=$here/../../contrib/systemd/nbdkit-zram.conf.example
dash=$(need dash)
usage=$here/../../README.md
command -v python3 >/dev/null || skip "python3 not installed (for unit2sh.py)"
plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
[ -n "$plugindir" ] || die "nbdkit --dump-config gives no plugindir"

inputs=$( { echo "$kernel"; printf '%s\n' "${modorder[@]}";
            sha256sum "$here/init" "$here/mkguest.sh" "$plugin" "$memhog" \
                      "$here/unit2sh.py" "$unit" "$unitconf" "$dash" "$usage" \
                      "$busybox" "${bins[@]}" ${ctltool:+"$ctltool"} \
                      ${SWAPCHURN:+"$SWAPCHURN"}; } |
          sha256sum | cut -c1-16)
initrd=$cache/initrd-$inputs.cpio.gz
if [ ! -f "$initrd" ]; then
  # Drop images unused for a day (another build's may be in use now); the
  # kernels stay.
  find "$cache" -maxdepth 1 -name 'initrd-*.cpio.gz' -mtime +0 -delete
  root=$(mktemp -d "$cache/root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,etc,lib/modules,lib64}

  copy_with_libs () {           # copy_with_libs FILE DEST
    local lib
    cp -L "$1" "$root/$2"
    for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  }

  cp "$busybox" "$root/bin/busybox"
  for a in $("$busybox" --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  for b in "${bins[@]}"; do
    copy_with_libs "$b" "/usr/sbin/$(basename "$b")"
  done
  ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
  [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
  copy_with_libs "$plugin" /zram.so
  # Installed as "meson install" would, so "nbdkit zram" (the systemd unit)
  # finds it.
  mkdir -p "$root$plugindir"
  ln -s /zram.so "$root$plugindir/nbdkit-zram-plugin.so"
  # The unit's commands, run by dash: busybox sh would run its own applets
  # (nbd-client, swapon, mkswap) in place of the real tools.
  copy_with_libs "$dash" /usr/bin/dash
  ln -s dash "$root/usr/bin/sh"
  python3 "$here/unit2sh.py" "$unit" nbd1 > "$root/unit-nbd1.sh" ||
    die "unit2sh.py failed"
  cp "$unitconf" "$root/etc/nbdkit-zram.conf.example"
  # The usage doc's command blocks, run as written by the guest.
  mkdir "$root/doc"
  for sec in "Use as swap" "Use as a filesystem" "Reset and statistics"; do
    awk -v sec="## $sec" -v out="$root/doc/$(echo "$sec" | tr 'A-Z ' 'a-z-')" '
      $0 == sec { on = 1; next }
      on && /^## / { on = 0 }
      on && /^```sh$/ { n++; blk = 1; next }
      on && /^```$/ { blk = 0; next }
      on && blk { print > (out "-" n ".sh") }' "$usage"
  done
  # All modules are loaded by /init: the doc's "modprobe nbd" must succeed.
  printf '#!/bin/sh\ngrep -q "^$1 " /proc/modules\n' > "$root/usr/sbin/modprobe"
  chmod 0755 "$root/usr/sbin/modprobe"
  copy_with_libs "$memhog" /usr/bin/memhog
  [ -n "${SWAPCHURN:-}" ] && copy_with_libs "$SWAPCHURN" /usr/bin/swapchurn
  [ -n "$ctltool" ] && copy_with_libs "$ctltool" /usr/bin/nbdzramctl
  # nbdinfo (optional) lets the guest read the export's extent map.
  command -v nbdinfo >/dev/null && copy_with_libs "$(command -v nbdinfo)" /usr/bin/nbdinfo
  i=0
  for f in "${modorder[@]}"; do
    cp "$f" "$root/lib/modules/$(printf '%02d' $i)-$(basename "$f")"
    i=$((i + 1))
  done
  cp "$here/init" "$root/init"
  chmod 0755 "$root/init"
  echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
  ( cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
fi

touch "$initrd"                 # in use: keep it from the clean-up above
echo "kernel $kernel"
echo "initrd $initrd"

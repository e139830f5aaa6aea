# shellcheck shell=bash
# Shared by scripts/vm-run.sh and scripts/vm-run-systemd.sh (sourced): the stock Debian
# kernel both VM runners boot, fetched once into a cache, and the QEMU accelerator.
# Callers define die() and log() and set CACHE and BUSYBOX.

# vm_kernel: resolve $VM_KERNEL_PKG (default linux-image-amd64; a meta package is resolved
# to the versioned package it depends on, and the answer is cached unless VM_REFRESH=1),
# download and unpack it into $CACHE/<pkg> once (never installed), with plain .ko modules
# (busybox modprobe reads no compressed ones), busybox depmod's modules.dep and, where the
# bzImage holds one with a PVH note, an uncompressed vmlinux (a direct PVH boot skips the
# in-guest decompression: about 3.5 s under TCG). Sets KPKG, KDIR, KVER, KERNEL (the image
# to boot: vmlinux unless VM_PVH=0) and MODDIR. Call with $CACHE/.lock held.
vm_kernel() {
  local meta dep
  meta=${VM_KERNEL_PKG:-linux-image-amd64}
  if [ "${VM_REFRESH:-0}" != 1 ] && [ -s "$CACHE/resolved-$meta" ]; then
    KPKG=$(cat "$CACHE/resolved-$meta")
  else
    if ! apt-cache show "$meta" >/dev/null 2>&1; then
      log "apt-cache knows no $meta; running apt-get update"
      apt-get update -qq >&2 || die "apt-get update failed"
    fi
    apt-cache show "$meta" >/dev/null 2>&1 || die "no Debian package $meta"
    KPKG=$meta
    dep=$(apt-cache depends "$KPKG" 2>/dev/null | awk '/ Depends: linux-image-/{print $2; exit}')
    [ -z "$dep" ] || KPKG=$dep
    echo "$KPKG" > "$CACHE/resolved-$meta"
  fi
  KDIR=$CACHE/$KPKG
  if [ ! -e "$KDIR/.done" ]; then
    log "preparing kernel $KPKG in $KDIR (one time)"
    rm -rf "$KDIR" && mkdir -p "$KDIR/dl" "$KDIR/root"
    (cd "$KDIR/dl" && apt-get download "$KPKG" >&2) || die "apt-get download $KPKG failed"
    dpkg-deb -x "$KDIR"/dl/*.deb "$KDIR/root" || die "dpkg-deb -x failed"
    KVER=$(ls "$KDIR/root/lib/modules" | head -n1)
    [ -n "$KVER" ] && [ -e "$KDIR/root/boot/vmlinuz-$KVER" ] || die "no vmlinuz/modules in $KPKG"
    find "$KDIR/root/lib/modules/$KVER" -name '*.ko.xz' -exec xz -d {} +
    find "$KDIR/root/lib/modules/$KVER" -name '*.ko.zst' -exec zstd -qd --rm {} +
    find "$KDIR/root/lib/modules/$KVER" -name '*.ko.gz' -exec gzip -d {} +
    "$BUSYBOX" depmod -b "$KDIR/root" "$KVER" || die "depmod failed"
    local off magic m cmd
    for magic in 'xz:\xFD\x37\x7A\x58\x5A\x00:xz -dc --single-stream' \
                 'zstd:\x28\xB5\x2F\xFD:zstd -dcq' 'gzip:\x1F\x8B\x08:gzip -dcq'; do
      IFS=: read -r _ m cmd <<<"$magic"
      command -v "${cmd%% *}" >/dev/null || continue
      for off in $(LC_ALL=C grep -obUaP "$m" "$KDIR/root/boot/vmlinuz-$KVER" | cut -d: -f1 | head -n 3 || true); do
        tail -c +$((off + 1)) "$KDIR/root/boot/vmlinuz-$KVER" | $cmd > "$KDIR/vmlinux" 2>/dev/null || true
        if [ "$(head -c 4 "$KDIR/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] &&
           { ! command -v readelf >/dev/null || [ "$(readelf -n "$KDIR/vmlinux" 2>/dev/null | grep -c 'Xen.*0x00000012\|PHYS32_ENTRY')" -gt 0 ]; }; then
          break 2
        fi
        rm -f "$KDIR/vmlinux"
      done
    done
    echo "$KVER" > "$KDIR/kver"
    rm -rf "$KDIR/dl"
    touch "$KDIR/.done"
  fi
  KVER=$(cat "$KDIR/kver")
  KERNEL=$KDIR/root/boot/vmlinuz-$KVER
  if [ -s "$KDIR/vmlinux" ] && [ "${VM_PVH:-1}" = 1 ]; then KERNEL=$KDIR/vmlinux; fi
  MODDIR=$KDIR/root/lib/modules/$KVER
}

# vm_bootstrap_modules ROOT MODULE...: copy each module that is not built in (and the
# modules it depends on) from $MODDIR into the initramfs tree ROOT, and list it in
# ROOT/vmlane/bootstrap-modules for the init to load in order. A module the package lacks
# is fatal unless its name is prefixed with '?'.
vm_bootstrap_modules() {
  local t=$1 m opt f
  shift
  mkdir -p "$t/vmlane" "$t/lib/modules/$KVER"
  : > "$t/vmlane/bootstrap-modules"
  for m in "$@"; do
    opt=0
    if [ "${m#\?}" != "$m" ]; then opt=1 m=${m#\?}; fi
    if grep -q "/$m\.ko\$" "$MODDIR/modules.builtin"; then continue; fi
    f=$(awk -F: -v m="/$m.ko" 'index($1, m) && substr($1, length($1)-length(m)+1) == m {print $1 " " $2; exit}' "$MODDIR/modules.dep")
    if [ -z "$f" ]; then
      [ "$opt" = 1 ] || die "module $m not in $KPKG"
      continue
    fi
    for f in $f; do mkdir -p "$t/lib/modules/$KVER/$(dirname "$f")"; cp "$MODDIR/$f" "$t/lib/modules/$KVER/$f"; done
    echo "$m" >> "$t/vmlane/bootstrap-modules"
  done
  cp "$MODDIR/modules.dep" "$MODDIR/modules.alias" "$t/lib/modules/$KVER/"
}

# vm_accel: sets ACCEL_ARGS from VM_ACCEL (auto: kvm only with kvm_intel/kvm_amd loaded
# and /dev/kvm usable, else tcg) and VM_CPU.
vm_accel() {
  ACCEL=${VM_ACCEL:-auto}
  if [ "$ACCEL" = auto ]; then
    ACCEL=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
      ACCEL=kvm
    fi
  fi
  case $ACCEL in
    kvm) ACCEL_ARGS=(-accel kvm -cpu "${VM_CPU:-host}") ;;
    tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu "${VM_CPU:-max}") ;;
    *) die "VM_ACCEL must be auto, kvm or tcg" ;;
  esac
}

# vm_disk RUNDIR: DISK_ARGS for VM_DISK (a throw-away sparse ext4 image), else none.
vm_disk() {
  DISK_ARGS=()
  [ -n "${VM_DISK:-}" ] || return 0
  truncate -s "$VM_DISK" "$1/disk.img" || die "bad VM_DISK size: $VM_DISK"
  mkfs.ext4 -q -F "$1/disk.img" || die "mkfs.ext4 failed (apt-get install e2fsprogs)"
  DISK_ARGS=(-drive "file=$1/disk.img,if=virtio,format=raw,cache=unsafe")
}

# vm_initrd_append RUNDIR INITRD: the per-run cpio (RUNDIR/root: config, env, command)
# appended to the cached INITRD, as RUNDIR/initrd.
vm_initrd_append() {
  (cd "$1/root" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) > "$1/run.cpio.gz"
  cat "$2" "$1/run.cpio.gz" > "$1/initrd"
}

# vm_pack TREE OUT: TREE as a gzip'd newc cpio at OUT, padded to a 4-byte multiple so that
# a second archive can be appended.
vm_pack() {
  (cd "$1" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) > "$2.tmp"
  local sz; sz=$(stat -c %s "$2.tmp")
  head -c $(( (4 - sz % 4) % 4 )) /dev/zero >> "$2.tmp"
  mv "$2.tmp" "$2"
}

# vm_quote S: S shell-quoted.
vm_quote() { local s=$1; printf "'%s'" "${s//\'/\'\\\'\'}"; }

# vm_env_file: the guest's environment (export lines): a root login's basics, PATH with
# /vmlane/sbin first, and each host variable named in VM_ENV.
vm_env_file() {
  echo "export HOME=/root TERM=dumb LANG=C.UTF-8 USER=root LOGNAME=root"
  echo "export PATH=/vmlane/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/vmlane/bin"
  local v
  for v in ${VM_ENV:-}; do
    [ -n "${!v+x}" ] && echo "export $v=$(vm_quote "${!v}")"
  done
  return 0
}

# vm_cmd_file ARG...: a script that execs ARG... as argv.
vm_cmd_file() {
  echo "#!/bin/sh"
  printf 'exec'; local a; for a in "$@"; do printf ' %s' "$(vm_quote "$a")"; done; echo
}

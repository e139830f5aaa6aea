#!/usr/bin/env bash
# scripts/vm-run.sh - capsa's VM lane: run a command as root inside a
# throw-away QEMU VM that boots a stock Debian kernel with a pure cgroup v2
# (unified) hierarchy, with a host directory shared read-write into the guest
# at the same absolute path. The development and CI hosts mount cgroup v1
# hierarchies; this is how tests/cgroups_*.rs and `oci-conformance/run --vm`
# see a pure v2 host. scripts/test.sh uses it as cargo's runner (VM_RUN
# overrides it); it needs nothing outside this repository and Debian.
#
# Usage:  scripts/vm-run.sh [-v] DIR CMD [ARG...]
#         (the command is exec'ed as argv; use `sh -c '...'` for shell syntax)
#   e.g.  scripts/vm-run.sh "$PWD" sh -c 'cat /sys/fs/cgroup/cgroup.controllers'
#
# Debian packages needed on the host (bookworm):
#   qemu-system-x86   (qemu-system-x86_64, SeaBIOS/iPXE ROMs come with it)
#   busybox-static    (/bin/busybox: guest init, cpio, depmod, modprobe)
#   apt, dpkg         (apt-get download + dpkg-deb -x of the kernel package)
#   util-linux, coreutils, grep, gzip  (flock, timeout, sha256sum, grep -P)
#   xz-utils, zstd    (unpack vmlinux and compressed modules: 6.1 uses xz,
#                      6.12 zstd vmlinux + .ko.xz modules)
#   optional: e2fsprogs (VM_DISK), binutils (readelf: PVH note check)
# The kernel package (default: the linux-image-<ver>-amd64 that
# linux-image-amd64 depends on) is downloaded with `apt-get download` and
# unpacked into the cache with dpkg-deb -x; it is never installed.
#
# Guest layout: root is a tmpfs (not rootfs, so pivot_root works for
# container runtimes); the host's / is shared read-only (9p) at /host and
# /usr (+ bin/sbin/lib/lib64 as on the host) and /etc are bind-mounted from
# it, so host binaries and their shared libraries run unchanged. DIR is
# shared read-write at the same path and is the working directory.
# cgroup2 is mounted at /sys/fs/cgroup (nsdelegate,memory_recursiveprot),
# cgroup v1 is disabled (cgroup_no_v1=all), every available controller is
# enabled in the root's cgroup.subtree_control, and the command runs in the
# leaf cgroup $VM_CGROUP (like a service on a systemd host). No network
# device; loopback is up. `modprobe NAME` and kernel module autoloading work
# against the full module tree of the kernel package.
# The command's stdout+stderr (merged) stream to this script's stdout; the
# script exits with the command's exit status (124 on VM_TIMEOUT, 125 if the
# VM died without reporting one).
#
# Environment knobs:
#   VM_CACHE      cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/vm-run)
#   VM_KERNEL_PKG Debian kernel package, versioned or meta (default
#                 linux-image-amd64; e.g. linux-image-6.12-amd64,
#                 linux-image-cloud-amd64, linux-image-rt-amd64)
#   VM_ACCEL      auto|kvm|tcg (auto: kvm only with kvm_intel/kvm_amd loaded)
#   VM_MEM        guest memory, qemu -m syntax (default 2G)
#   VM_SMP        guest vCPUs (default: host nproc)
#   VM_TIMEOUT    seconds before the VM is killed (default 900)
#   VM_CGROUP     cgroup (under /sys/fs/cgroup) the command runs in
#                 (default /vmlane.scope; "/" keeps it in the root cgroup)
#   VM_ENV        space-separated names of host env vars to pass in
#   VM_MODULES    space-separated modules to load before the command
#   VM_APPEND     extra kernel command line
#   VM_DISK       e.g. 2G: a throw-away sparse virtio disk, /dev/vda in the
#                 guest, ext4 (made on the host with mkfs.ext4 from
#                 e2fsprogs) mounted at /scratch; for io.max/io.stat tests
#                 and for a non-9p, non-tmpfs filesystem
#   VM_CPU        qemu -cpu model (default: max under TCG, host under KVM)
#   VM_DEBUG=1    show the full kernel boot log and init trace (same as -v)
#   VM_DMESG=1    print the guest dmesg after the command
#   VM_QUIET=1    no "vm-run:" status lines on stderr
#   VM_PVH=0      boot the compressed bzImage instead of the extracted vmlinux
#   VM_REFRESH=1  re-resolve a meta kernel package (else the first answer is kept)
# Use as a cargo runner (each test binary boots its own VM, cwd = DIR):
#   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/vm-run.sh $PWD" cargo test
# Only DIR and the host's read-only / are visible: keep the runtime's --root
# on the guest's tmpfs (/run), and shared files out of /tmp (not shared).
# 9p cannot hold FIFOs, sockets or device nodes. Without KVM the guest runs
# under TCG emulation: ~5 s per boot; never time benchmarks in it.
set -euo pipefail

die() { echo "vm-run: $*" >&2; exit 125; }
log() { [ "${VM_QUIET:-0}" = 1 ] || echo "vm-run: $*" >&2; }
# shellcheck source=scripts/vm-kernel.sh
. "$(dirname "$0")/vm-kernel.sh"

if [ "${1:-}" = -v ]; then VM_DEBUG=1; shift; fi
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
WORKDIR=$(cd "$1" && pwd -P) || die "no such directory: $1"
shift
case $WORKDIR in
  /|/usr|/usr/*|/etc|/etc/*|/proc*|/sys*|/dev*|/vmlane*|*,*) die "cannot share $WORKDIR (system path or comma in path)" ;;
esac

CACHE=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vm-run}
MEM=${VM_MEM:-2G}
SMP=${VM_SMP:-$(nproc)}
TIMEOUT=${VM_TIMEOUT:-900}
CGROUP=${VM_CGROUP:-/vmlane.scope}
DEBUG=${VM_DEBUG:-0}
BUSYBOX=${VM_BUSYBOX:-/bin/busybox}

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
BB_APPLETS=" $("$BUSYBOX" --list 2>/dev/null | tr '\n' ' ') "
[[ $BB_APPLETS == *" cpio "* && $BB_APPLETS == *" depmod "* ]] || die "$BUSYBOX (static busybox) missing (apt-get install busybox-static)"
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q INTERP; }
if command -v readelf >/dev/null && ! file_is_static "$BUSYBOX"; then die "$BUSYBOX is not static"; fi

mkdir -p "$CACHE"

# ---------------------------------------------------------------- guest init
# One script, two stages: "/init" on the initramfs (stage 1) builds a tmpfs
# root and switch_roots into it, running itself again as stage 2.
IFS= read -r -d '' GUEST_INIT <<'EOF_INIT' || true
#!/bin/busybox sh
# vm-run guest init
PATH=/bin
export PATH
KVER=$(uname -r)
. /vmlane/run/config
if [ "$VM_DEBUG" = 1 ]; then set -x; fi
bb=/bin/busybox
fail() { echo "vm-run-init: $*" >&2; echo "VMLANE_EXIT=125" > /dev/ttyS1; sync; $bb poweroff -f; }

if [ "$1" != stage2 ]; then
  # ------------------------------------------------------------ stage 1
  $bb mkdir -p /proc /sys /dev
  $bb mount -t proc proc /proc
  $bb mount -t sysfs sysfs /sys
  $bb mount -t devtmpfs devtmpfs /dev
  for m in $($bb cat /vmlane/bootstrap-modules); do
    $bb modprobe $m || fail "modprobe $m failed"
  done
  R=/newroot
  $bb mkdir -p $R
  $bb mount -t tmpfs -o mode=0755 rootfs-tmpfs $R || fail "tmpfs root"
  $bb mkdir -p $R/proc $R/sys $R/dev $R/run $R/tmp $R/var/tmp $R/root $R/host $R/usr $R/etc
  $bb chmod 1777 $R/tmp $R/var/tmp
  $bb chmod 0700 $R/root
  $bb cp -a /vmlane $R/vmlane
  $bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostroot $R/host \
    || fail "mount host root (9p)"
  $bb mount --bind $R/host/usr $R/usr
  $bb mount -o remount,bind,ro $R/usr
  $bb mount --bind $R/host/etc $R/etc
  $bb mount -o remount,bind,ro $R/etc
  for d in bin sbin lib lib32 lib64 libx32; do
    if [ -L $R/host/$d ]; then
      $bb ln -s "$($bb readlink $R/host/$d)" $R/$d
    elif [ -d $R/host/$d ]; then
      $bb mkdir -p $R/$d && $bb mount --bind $R/host/$d $R/$d && $bb mount -o remount,bind,ro $R/$d
    fi
  done
  # full module tree of the kernel package, from the host cache
  $bb mount --bind "$R/host$VM_MODDIR" $R/vmlane/lib/modules/$KVER || fail "bind modules"
  $bb mkdir -p "$R$VM_WORKDIR"
  $bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap work "$R$VM_WORKDIR" \
    || fail "mount work dir (9p)"
  $bb mount --move /dev $R/dev
  $bb mount --move /proc $R/proc
  $bb mount --move /sys $R/sys
  exec $bb switch_root $R /vmlane/bin/busybox sh /vmlane/init stage2
  fail "switch_root failed"
fi

# -------------------------------------------------------------- stage 2
bb=/vmlane/bin/busybox
# /vmlane/bin: busybox applets (fallback, end of PATH); /vmlane/sbin/modprobe
# (first in PATH, and the kernel's modprobe helper) uses the module tree.
echo /vmlane/sbin/modprobe > /proc/sys/kernel/modprobe
PATH=/vmlane/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/vmlane/bin
export PATH

$bb mkdir -p /dev/pts /dev/shm /dev/mqueue
$bb mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
$bb mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
$bb mount -t mqueue mqueue /dev/mqueue
$bb mount -t tmpfs -o mode=0755,nosuid,nodev run /run
$bb mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
$bb mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
$bb mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
$bb mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$bb mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
$bb mount -t bpf bpf /sys/fs/bpf 2>/dev/null
[ -e /dev/fd ] || $bb ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || $bb ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || $bb ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || $bb ln -s /proc/self/fd/2 /dev/stderr
[ -e /dev/ptmx ] || $bb ln -s pts/ptmx /dev/ptmx
$bb ip link set lo up
$bb hostname vmlane
for c in $($bb cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "vm-run-init: cannot enable $c" >&2
done
for m in $VM_MODULES; do /vmlane/sbin/modprobe "$m" || echo "vm-run-init: modprobe $m failed" >&2; done
if [ -n "$VM_DISK" ]; then
  /vmlane/sbin/modprobe virtio_blk 2>/dev/null
  i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do $bb usleep 100000; i=$((i+1)); done
  $bb mkdir -p /scratch
  $bb mount -t ext4 /dev/vda /scratch || echo "vm-run-init: cannot mount /dev/vda on /scratch" >&2
fi
$bb stty -F /dev/console -onlcr 2>/dev/null
$bb stty -F /dev/ttyS0 -onlcr 2>/dev/null

if [ "$VM_CGROUP" != / ]; then
  $bb mkdir -p "/sys/fs/cgroup$VM_CGROUP"
  CGPROCS="/sys/fs/cgroup$VM_CGROUP/cgroup.procs"
else
  CGPROCS=/sys/fs/cgroup/cgroup.procs
fi
set +x
cd "$VM_WORKDIR" || fail "cd $VM_WORKDIR"
# the command: stdin from /dev/null, output to the console, in $VM_CGROUP
/vmlane/bin/busybox sh -c 'echo $$ > "$1" && shift && . /vmlane/run/env && exec "$@"' \
  vm-run "$CGPROCS" /vmlane/run/cmd.sh </dev/null >/dev/console 2>&1
rc=$?
if [ "$VM_DMESG" = 1 ]; then echo "----- guest dmesg -----"; $bb dmesg; fi >/dev/console 2>&1
$bb sync
echo "VMLANE_EXIT=$rc" > /dev/ttyS1
echo 0 > /proc/sys/kernel/printk
$bb poweroff -f
EOF_INIT

# any change to this script or the shared kernel code rebuilds the initramfs
INIT_HASH=$(cat "$0" "$(dirname "$0")/vm-kernel.sh" | sha256sum | cut -c1-12)

# ------------------------------------------------------ kernel + initramfs
prepare() {
  vm_kernel   # scripts/vm-kernel.sh: KPKG, KDIR, KVER, KERNEL, MODDIR
  local kver=$KVER kdir=$KDIR
  INITRD=$kdir/initramfs-$INIT_HASH.cpio.gz
  if [ ! -e "$INITRD" ]; then
    log "building $INITRD"
    # Initramfs files of other versions of this script (another checkout, the
    # shared cache) may be in use right now: prune only long-unused ones.
    find "$kdir" -maxdepth 1 -name 'initramfs-*.cpio.gz' -mtime +7 -delete 2>/dev/null || true
    local t a; t=$(mktemp -d)
    mkdir -p "$t/vmlane/bin" "$t/vmlane/sbin" "$t/vmlane/run" "$t/vmlane/lib/modules/$kver" "$t/lib/modules/$kver"
    cp "$BUSYBOX" "$t/vmlane/bin/busybox"
    ln -s vmlane/bin "$t/bin"
    for a in $BB_APPLETS; do
      case $a in busybox|modprobe|insmod|depmod) ;; *) ln -s busybox "$t/vmlane/bin/$a" ;; esac
    done
    printf '%s\n' "$GUEST_INIT" > "$t/init"; chmod 755 "$t/init"
    cp "$t/init" "$t/vmlane/init"
    printf '%s\n' '#!/vmlane/bin/busybox sh' \
      'exec /vmlane/bin/busybox chroot /vmlane /bin/busybox modprobe "$@"' > "$t/vmlane/sbin/modprobe"
    chmod 755 "$t/vmlane/sbin/modprobe"
    # bootstrap modules: what stage 1 needs to mount the 9p shares
    vm_bootstrap_modules "$t" virtio_pci 9pnet_virtio 9p
    vm_pack "$t" "$INITRD"
    rm -rf "$t"
  fi
}
exec 9>"$CACHE/.lock"
flock 9
prepare
touch "$INITRD"   # in use: keeps it from being pruned
flock -u 9

# ------------------------------------------------------------- per-run bits
RUN=$(mktemp -d "${TMPDIR:-/tmp}/vm-run.XXXXXX")
QPID=
cleanup() { [ -n "$QPID" ] && kill "$QPID" 2>/dev/null; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM
mkdir -p "$RUN/root/vmlane/run"
{
  echo "VM_WORKDIR=$(vm_quote "$WORKDIR")"
  echo "VM_MODDIR=$(vm_quote "$MODDIR")"
  echo "VM_CGROUP=$(vm_quote "$CGROUP")"
  echo "VM_MODULES=$(vm_quote "${VM_MODULES:-}")"
  echo "VM_DEBUG=$(vm_quote "$DEBUG")"
  echo "VM_DMESG=$(vm_quote "${VM_DMESG:-0}")"
  echo "VM_DISK=$(vm_quote "${VM_DISK:-}")"
} > "$RUN/root/vmlane/run/config"
vm_env_file > "$RUN/root/vmlane/run/env"
vm_cmd_file "$@" > "$RUN/root/vmlane/run/cmd.sh"
chmod 755 "$RUN/root/vmlane/run/cmd.sh"
vm_initrd_append "$RUN" "$INITRD"

# ------------------------------------------------------------------- accel
vm_accel
vm_disk "$RUN"

APPEND="console=ttyS0 panic=-1 cgroup_no_v1=all rdinit=/init"
if [ "$DEBUG" = 1 ]; then APPEND+=" loglevel=7"; else APPEND+=" quiet loglevel=1"; fi
APPEND+=" ${VM_APPEND:-}"

log "accel=$ACCEL mem=$MEM smp=$SMP kernel=$(basename "$KERNEL") dir=$WORKDIR"
START=$(date +%s.%N)
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
  -M pc "${ACCEL_ARGS[@]}" -m "$MEM" -smp "$SMP" \
  -nodefaults -no-user-config -display none -no-reboot \
  -chardev stdio,id=con,signal=on -serial chardev:con \
  -serial file:"$RUN/status" \
  -kernel "$KERNEL" -initrd "$RUN/initrd" -append "$APPEND" "${DISK_ARGS[@]}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$WORKDIR",mount_tag=work,security_model=none,multidevs=remap \
  </dev/null &
QPID=$!
set +e
wait "$QPID"; qrc=$?
set -e
QPID=
END=$(date +%s.%N)
log "vm wall time $(awk -v a="$START" -v b="$END" 'BEGIN{printf "%.2f", b-a}')s"
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then log "timeout after ${TIMEOUT}s"; exit 124; fi
rc=$(tr -d '\r' < "$RUN/status" 2>/dev/null | sed -n 's/^VMLANE_EXIT=\([0-9]*\)$/\1/p' | tail -n1)
if [ -z "$rc" ]; then log "guest reported no exit status (qemu rc=$qrc)"; exit 125; fi
exit "$rc"

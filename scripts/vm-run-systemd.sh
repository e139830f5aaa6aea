#!/usr/bin/env bash
# scripts/vm-run-systemd.sh - capsa's systemd VM lane: like scripts/vm-run.sh
# (same calling convention, same cached Debian kernel), but the throw-away
# QEMU VM boots Debian's systemd as PID 1, with the system D-Bus, journald and
# logind, and runs the command as a service once the boot is done. This is
# where the systemd cgroup driver (--systemd-cgroup) meets a real systemd:
# tests/systemd_*.rs run through it (scripts/test.sh uses it as cargo's
# runner). The development and CI hosts need not run systemd: only the host's
# systemd and dbus packages are used, read from its /usr and /etc.
#
# Usage:  scripts/vm-run-systemd.sh [-v] DIR CMD [ARG...]
#         (the command is exec'ed as argv; use `sh -c '...'` for shell syntax)
#   e.g.  scripts/vm-run-systemd.sh "$PWD" sh -c 'systemctl is-system-running; busctl status | head -3'
#
# Debian packages needed on the host: those of scripts/vm-run.sh, plus
# systemd and dbus (installed, not running).
#
# Guest layout: the initramfs (busybox) mounts the host's / read-only (9p)
# as the lower layer of an overlayfs root whose upper layer is a tmpfs: the
# whole tree is writable in the guest and every write is thrown away. /run
# and /tmp are fresh tmpfs (DIR may be below /tmp: it is mounted over the
# fresh one; not below /run, systemd's); DIR is shared read-write (9p) at
# the same path and is the command's working directory.
# Before handing over to /lib/systemd/systemd, the init makes the overlay
# look like a freshly installed VM rather than a copy of the host:
#   - /.dockerenv and /.containerenv go (systemd would detect a container,
#     ignore the kernel command line and skip the cgroup set-up);
#   - a fresh random /etc/machine-id (+ /var/lib/dbus/machine-id link),
#     hostname vmlane, an empty /etc/fstab;
#   - /etc/systemd/system is replaced by an empty one (an opaque overlay
#     dir): the host's enabled units (docker, containerd, timers, getty...)
#     stay off; only the vendor units' static wants under /lib apply;
#   - every host generator except systemd-debug-generator is masked
#     (sysv scripts, gpt-auto, cryptsetup, getty, postgresql ...);
#   - autofs4 is loaded from the initramfs (systemd's libkmod cannot load
#     modules here: the host has no kmod, the package's tree has no binary
#     indexes), and /proc/sys/kernel/modprobe (and /usr/sbin/modprobe if
#     the host has none) is a busybox modprobe over the kernel package's
#     module tree, so module autoloading works;
#   - emergency.service and rescue.service report the failed units and
#     power off (exit 125) instead of waiting for a console login.
# The command runs in vmlane.service (system.slice/vmlane.service; ordered
# after multi-user.target, so it does not hold up the boot) once
# `systemctl is-system-running --wait` returns (at most VM_BOOT_WAIT s),
# with stdin /dev/null and stdout+stderr on the serial console; then the
# guest syncs and powers off at once (systemctl poweroff -ff).
# The command's output streams to this script's stdout; the script exits
# with the command's exit status (124 on VM_TIMEOUT, 125 if the VM died or
# systemd did not boot). Status lines (boot time, system state and failed
# units, wall time) go to stderr unless VM_QUIET=1.
#
# Environment knobs (as scripts/vm-run.sh unless noted):
#   VM_CACHE, VM_KERNEL_PKG, VM_ACCEL, VM_MEM (2G), VM_SMP, VM_TIMEOUT (900),
#   VM_ENV, VM_MODULES, VM_APPEND, VM_DISK, VM_CPU, VM_DMESG, VM_QUIET,
#   VM_PVH, VM_REFRESH, VM_DEBUG=1 (or -v: kernel log and systemd status)
#   VM_CGROUP_MODE unified (default: pure cgroup v2, cgroup_no_v1=all),
#                 hybrid (systemd.unified_cgroup_hierarchy=0: v1 controllers,
#                 systemd's own tree on cgroup2 at /sys/fs/cgroup/unified)
#                 or legacy (v1 only: name=systemd at /sys/fs/cgroup/systemd)
#   VM_MASK       more units to mask (space-separated)
#   VM_FULL_BOOT=1 keep the boot units masked by default because no
#                 runtime test needs them and each costs 0.3-1.8 s under TCG
#                 (binfmt, sysusers, the modprobe@ units, utmp, journal flush,
#                 random seed, the configfs/fusectl/debugfs/tracefs mounts)
#   VM_BOOT_WAIT  seconds the command waits for the boot to finish (300)
# Not supported: VM_CGROUP (systemd places the command, in vmlane.service).
# Cost under TCG: ~10 s from power-on to the command; batch many checks
# per boot (one test binary per boot as a cargo runner).
set -euo pipefail

die() { echo "vm-run-systemd: $*" >&2; exit 125; }
log() { [ "${VM_QUIET:-0}" = 1 ] || echo "vm-run-systemd: $*" >&2; }
# shellcheck source=scripts/vm-kernel.sh
. "$(dirname "$0")/vm-kernel.sh"

if [ "${1:-}" = -v ]; then VM_DEBUG=1; shift; fi
[ $# -ge 2 ] || { sed -n '11,14p' "$0" >&2; exit 2; }
WORKDIR=$(cd "$1" && pwd -P) || die "no such directory: $1"
shift
case $WORKDIR in
  /|/usr|/usr/*|/etc|/etc/*|/proc*|/sys*|/dev*|/run|/run/*|/tmp|/vmlane*|*,*)
    die "cannot share $WORKDIR (system path, /tmp itself, below /run, or comma in path)" ;;
esac
[ -z "${VM_CGROUP:-}" ] || die "VM_CGROUP is not supported: systemd places the command (vmlane.service)"

CACHE=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vm-run}
MEM=${VM_MEM:-2G}
SMP=${VM_SMP:-$(nproc)}
TIMEOUT=${VM_TIMEOUT:-900}
DEBUG=${VM_DEBUG:-0}
BUSYBOX=${VM_BUSYBOX:-/bin/busybox}
CGMODE=${VM_CGROUP_MODE:-unified}

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[ -x /lib/systemd/systemd ] || die "no /lib/systemd/systemd on the host (apt-get install systemd)"
[ -x /usr/bin/dbus-daemon ] || die "no /usr/bin/dbus-daemon on the host (apt-get install dbus)"
BB_APPLETS=" $("$BUSYBOX" --list 2>/dev/null | tr '\n' ' ') "
[[ $BB_APPLETS == *" cpio "* && $BB_APPLETS == *" depmod "* ]] || die "$BUSYBOX (static busybox) missing (apt-get install busybox-static)"
if command -v readelf >/dev/null && LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP; then
  die "$BUSYBOX is not static"
fi
mkdir -p "$CACHE"

# ----------------------------------------------------------- initramfs init
IFS= read -r -d '' GUEST_INIT <<'EOF_INIT' || true
#!/bin/busybox sh
# vm-run-systemd: initramfs init; builds the root and execs systemd
PATH=/bin
export PATH
. /vmlane/run/config
[ "$VM_DEBUG" != 1 ] || set -x
bb=/bin/busybox
KVER=$($bb uname -r)
fail() {
  echo "vm-run-systemd init: $*" >&2
  echo "VMLANE_EXIT=125" > /dev/ttyS1
  $bb sync
  $bb poweroff -f
}

$bb mkdir -p /proc /sys /dev /host /upper /newroot
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in $($bb cat /vmlane/bootstrap-modules); do $bb modprobe "$m" || fail "modprobe $m"; done
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostroot /host \
  || fail "9p mount of the host's /"
$bb mount -t tmpfs -o mode=0755 vmlane-upper /upper || fail "tmpfs for the overlay"
$bb mkdir -p /upper/data /upper/work
$bb mount -t overlay -o lowerdir=/host,upperdir=/upper/data,workdir=/upper/work vmlane-root /newroot \
  || fail "overlay root"
R=/newroot
$bb mount -t tmpfs -o mode=0755,nosuid,nodev run $R/run || fail "tmpfs /run"
$bb mount -t tmpfs -o mode=1777,nosuid,nodev tmp $R/tmp || fail "tmpfs /tmp"

# our tools: busybox, the modprobe wrapper, the unit scripts, the kernel's modules
$bb rm -rf $R/vmlane
$bb cp -a /vmlane $R/vmlane
$bb mkdir -p $R/vmlane/lib/modules/$KVER $R/usr/lib/modules/$KVER
$bb mount --bind "/host$VM_MODDIR" $R/vmlane/lib/modules/$KVER || fail "bind the module tree"
$bb mount --bind "/host$VM_MODDIR" $R/usr/lib/modules/$KVER || fail "bind the module tree"
echo /vmlane/sbin/modprobe > /proc/sys/kernel/modprobe
[ -e $R/usr/sbin/modprobe ] || [ -e $R/sbin/modprobe ] || $bb cp /vmlane/sbin/modprobe $R/usr/sbin/modprobe

# a VM of its own, not the host and not a container
$bb rm -f $R/.dockerenv $R/.containerenv
$bb tr -d '-' < /proc/sys/kernel/random/uuid > $R/etc/machine-id
$bb mkdir -p $R/var/lib/dbus
$bb ln -sf /etc/machine-id $R/var/lib/dbus/machine-id
echo vmlane > $R/etc/hostname
echo "# vm-run-systemd: nothing to mount" > $R/etc/fstab

# units: none of the host's enablement (rm + mkdir on the overlay makes an
# opaque dir), the default target, our service, masks, emergency overrides
S=$R/etc/systemd/system
$bb rm -rf $S
$bb mkdir -p $S/multi-user.target.wants $S/emergency.service.d $S/rescue.service.d || fail "mkdir $S"
$bb ln -s /lib/systemd/system/multi-user.target $S/default.target
$bb cp /vmlane/units/vmlane.service $S/
$bb ln -s ../vmlane.service $S/multi-user.target.wants/vmlane.service
$bb cp /vmlane/units/boot-failed.conf $S/emergency.service.d/vmlane.conf
$bb cp /vmlane/units/boot-failed.conf $S/rescue.service.d/vmlane.conf
for u in getty.target systemd-modules-load.service $VM_MASK; do $bb ln -sf /dev/null $S/$u; done
G=$R/etc/systemd/system-generators
$bb rm -rf $G
$bb mkdir -p $G
for g in /host/lib/systemd/system-generators/* /host/usr/lib/systemd/system-generators/*; do
  [ -e "$g" ] || continue
  case ${g##*/} in systemd-debug-generator) ;; *) $bb ln -sf /dev/null "$G/${g##*/}" ;; esac
done

$bb mkdir -p "$R$VM_WORKDIR"
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap work "$R$VM_WORKDIR" \
  || fail "9p mount of $VM_WORKDIR"
[ -x $R/lib/systemd/systemd ] || fail "no /lib/systemd/systemd in the root"
$bb mount --move /dev $R/dev
$bb mount --move /proc $R/proc
$bb mount --move /sys $R/sys
exec $bb switch_root $R /lib/systemd/systemd
fail "switch_root to systemd"
EOF_INIT

# ------------------------------------------- vmlane.service's main process
IFS= read -r -d '' GUEST_SERVICE <<'EOF_SERVICE' || true
#!/bin/sh
# vm-run-systemd: runs the command once the system is up, then powers off
. /vmlane/run/config
uptime() { read -r u _ < /proc/uptime; echo "$u"; }
state=$(timeout "$VM_BOOT_WAIT" systemctl is-system-running --wait 2>/dev/null) ||
  state=${state:-$(systemctl is-system-running 2>/dev/null)}
failed=$(systemctl list-units --state=failed --plain --no-legend 2>/dev/null | while read -r u _; do printf '%s ' "$u"; done)
echo "VMLANE_UP=$(uptime) $state $failed" > /dev/ttyS1
for m in $VM_MODULES; do modprobe "$m" || echo "vm-run-systemd: modprobe $m failed" >&2; done
if [ -n "$VM_DISK" ]; then
  modprobe virtio_blk 2>/dev/null
  i=0
  while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  mkdir -p /scratch
  mount -t ext4 /dev/vda /scratch || echo "vm-run-systemd: cannot mount /dev/vda on /scratch" >&2
fi
# systemd opened ttyS0 without making it our controlling tty; no CR before LF
stty -onlcr 2>/dev/null
cd "$VM_WORKDIR" || { echo "VMLANE_EXIT=125" > /dev/ttyS1; systemctl poweroff -ff; }
echo "VMLANE_START=$(uptime)" > /dev/ttyS1
sh -c '. /vmlane/run/env && exec "$@"' vm-run /vmlane/run/cmd.sh </dev/null
rc=$?
echo "VMLANE_END=$(uptime)" > /dev/ttyS1
if [ "$VM_DMESG" = 1 ]; then echo "----- guest dmesg -----"; dmesg; fi
stty -onlcr 2>/dev/null   # tcsetattr drains the UART: all output has left
sync
echo "VMLANE_EXIT=$rc" > /dev/ttyS1
[ "$VM_DEBUG" = 1 ] || echo 0 > /proc/sys/kernel/printk
exec systemctl poweroff -ff >/dev/null 2>&1
EOF_SERVICE

IFS= read -r -d '' GUEST_FAILED <<'EOF_FAILED' || true
#!/bin/sh
# vm-run-systemd: the boot fell into emergency or rescue mode
exec </dev/null >/dev/ttyS0 2>&1
stty -onlcr 2>/dev/null
echo "vm-run-systemd: systemd entered $1 mode; failed units:"
SYSTEMD_COLORS=0 systemctl list-units --state=failed --plain --no-legend --no-pager
journalctl -b -p warning -n 30 -q --no-pager 2>/dev/null
sync
echo "VMLANE_EXIT=125" > /dev/ttyS1
exec systemctl poweroff -ff >/dev/null 2>&1
EOF_FAILED

IFS= read -r -d '' UNIT_SERVICE <<'EOF_UNIT' || true
[Unit]
Description=vm-run-systemd: the command
After=multi-user.target

[Service]
Type=simple
ExecStart=/vmlane/service
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
TTYVTDisallocate=no
EOF_UNIT

IFS= read -r -d '' UNIT_FAILED <<'EOF_UNIT' || true
[Unit]
DefaultDependencies=no
[Service]
ExecStartPre=
ExecStart=
ExecStart=/vmlane/boot-failed %N
EOF_UNIT

# any change to this script or the shared kernel code rebuilds the initramfs
INIT_HASH=$(cat "$0" "$(dirname "$0")/vm-kernel.sh" | sha256sum | cut -c1-12)

prepare() {
  vm_kernel   # scripts/vm-kernel.sh: KPKG, KDIR, KVER, KERNEL, MODDIR
  INITRD=$KDIR/initramfs-systemd-$INIT_HASH.cpio.gz
  [ ! -e "$INITRD" ] || return 0
  log "building $INITRD"
  find "$KDIR" -maxdepth 1 -name 'initramfs-*.cpio.gz' -mtime +7 -delete 2>/dev/null || true
  local t a
  t=$(mktemp -d)
  mkdir -p "$t/vmlane/bin" "$t/vmlane/sbin" "$t/vmlane/run" "$t/vmlane/units"
  cp "$BUSYBOX" "$t/vmlane/bin/busybox"
  ln -s vmlane/bin "$t/bin"
  for a in $BB_APPLETS; do
    case $a in busybox|modprobe|insmod|depmod) ;; *) ln -s busybox "$t/vmlane/bin/$a" ;; esac
  done
  printf '%s\n' "$GUEST_INIT" > "$t/init"
  printf '%s\n' "$GUEST_SERVICE" > "$t/vmlane/service"
  printf '%s\n' "$GUEST_FAILED" > "$t/vmlane/boot-failed"
  chmod 755 "$t/init" "$t/vmlane/service" "$t/vmlane/boot-failed"
  printf '%s\n' "$UNIT_SERVICE" > "$t/vmlane/units/vmlane.service"
  printf '%s\n' "$UNIT_FAILED" > "$t/vmlane/units/boot-failed.conf"
  # busybox modprobe, chrooted into /vmlane where the module tree is mounted
  printf '%s\n' '#!/vmlane/bin/busybox sh' \
    'exec /vmlane/bin/busybox chroot /vmlane /bin/busybox modprobe "$@"' > "$t/vmlane/sbin/modprobe"
  chmod 755 "$t/vmlane/sbin/modprobe"
  # 9p shares, the overlay root, and autofs (systemd wants it at start-up)
  vm_bootstrap_modules "$t" virtio_pci 9pnet_virtio 9p overlay '?autofs4'
  vm_pack "$t" "$INITRD"
  rm -rf "$t"
}
exec 9>"$CACHE/.lock"
flock 9
prepare
touch "$INITRD"   # in use: keeps it from being pruned
flock -u 9

# ------------------------------------------------------------- per-run bits
RUN=$(mktemp -d "${TMPDIR:-/tmp}/vm-run-systemd.XXXXXX")
QPID=
cleanup() { [ -n "$QPID" ] && kill "$QPID" 2>/dev/null; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$RUN/root/vmlane/run"
{
  echo "VM_WORKDIR=$(vm_quote "$WORKDIR")"
  echo "VM_MODDIR=$(vm_quote "$MODDIR")"
  echo "VM_MODULES=$(vm_quote "${VM_MODULES:-}")"
  echo "VM_DEBUG=$(vm_quote "$DEBUG")"
  echo "VM_DMESG=$(vm_quote "${VM_DMESG:-0}")"
  echo "VM_DISK=$(vm_quote "${VM_DISK:-}")"
  lean=
  if [ "${VM_FULL_BOOT:-0}" != 1 ]; then
    lean="systemd-binfmt.service proc-sys-fs-binfmt_misc.automount systemd-sysusers.service
      modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service
      modprobe@loop.service modprobe@fuse.service systemd-update-utmp.service
      systemd-update-utmp-runlevel.service systemd-journal-flush.service
      systemd-random-seed.service systemd-tmpfiles-clean.timer sys-kernel-config.mount
      sys-fs-fuse-connections.mount sys-kernel-debug.mount sys-kernel-tracing.mount"
  fi
  # shellcheck disable=SC2086 # one line of names
  echo "VM_MASK=$(vm_quote "$(echo ${VM_MASK:-} $lean)")"
  echo "VM_BOOT_WAIT=$(vm_quote "${VM_BOOT_WAIT:-300}")"
} > "$RUN/root/vmlane/run/config"
vm_env_file > "$RUN/root/vmlane/run/env"
vm_cmd_file "$@" > "$RUN/root/vmlane/run/cmd.sh"
chmod 755 "$RUN/root/vmlane/run/cmd.sh"
vm_initrd_append "$RUN" "$INITRD"
vm_accel
vm_disk "$RUN"

APPEND="console=ttyS0 panic=-1 rdinit=/init systemd.crash_reboot=1"
case $CGMODE in
  unified) APPEND+=" systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" ;;
  hybrid) APPEND+=" systemd.unified_cgroup_hierarchy=0" ;;
  legacy) APPEND+=" systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
  *) die "VM_CGROUP_MODE must be unified, hybrid or legacy" ;;
esac
if [ "$DEBUG" = 1 ]; then
  APPEND+=" loglevel=7 systemd.show_status=1"
else
  APPEND+=" quiet loglevel=1 systemd.show_status=0"
fi
APPEND+=" ${VM_APPEND:-}"

log "accel=$ACCEL mem=$MEM smp=$SMP kernel=$(basename "$KERNEL") cgroup=$CGMODE dir=$WORKDIR"
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
wait "$QPID"
qrc=$?
set -e
QPID=
END=$(date +%s.%N)
status() { tr -d '\r' < "$RUN/status" 2>/dev/null | sed -n "s/^$1=//p" | tail -n1; }
up=$(status VMLANE_UP)
if [ -n "$up" ]; then
  read -r t state failed <<<"$up"
  log "system $state after ${t}s (guest uptime)${failed:+; failed units: $failed}"
  s=$(status VMLANE_START) e=$(status VMLANE_END)
  [ -z "$e" ] || log "command ran $(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.2f", b-a}')s"
fi
log "vm wall time $(awk -v a="$START" -v b="$END" 'BEGIN{printf "%.2f", b-a}')s"
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then log "timeout after ${TIMEOUT}s"; exit 124; fi
rc=$(status VMLANE_EXIT | grep -x '[0-9]*' || true)
[ -n "$rc" ] || { log "guest reported no exit status (qemu rc=$qrc)"; exit 125; }
exit "$rc"

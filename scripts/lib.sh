# shellcheck shell=bash
# Shared by scripts/*.sh (sourced, from the repository root).

# need_root WHO: exit unless root; capsa's scripts start real containers.
need_root() {
  [ "$(id -u)" = 0 ] || { echo "$1: run as root (it starts real containers)" >&2; exit 1; }
}

# cargo_on_path WHO: rustup's default location is not on PATH in non-login shells.
cargo_on_path() {
  if [ -d /root/.cargo/bin ]; then PATH=/root/.cargo/bin:$PATH; fi
  command -v cargo >/dev/null || { echo "$1: cargo not found (install Rust with rustup)" >&2; exit 1; }
}

# capsa_bin: the newest release binary. .cargo/config.toml may set a build target,
# which puts it in target/<triple>/release instead of target/release.
capsa_bin() {
  local f newest=
  for f in "$PWD"/target/release/capsa "$PWD"/target/*/release/capsa; do
    if [ -x "$f" ] && { [ -z "$newest" ] || [ "$f" -nt "$newest" ]; }; then newest=$f; fi
  done
  [ -n "$newest" ] || { echo "no target/*/release/capsa: build it first" >&2; return 1; }
  printf '%s\n' "$newest"
}

# The Debian 12 packages the build and the whole test suite use; the one list (.ci/run and
# scripts/test.sh both install it through install_test_deps).
#   busybox-static: test rootfs and the VM lane's init; runc, crun: reference runtimes
#   (CAPSA_TEST_RUNTIME, conformance, benches); qemu-system-x86, xz-utils, zstd, e2fsprogs,
#   binutils: the VM lane (scripts/vm-run.sh); systemd, dbus: the systemd VM lane
#   (scripts/vm-run-systemd.sh boots them as the guest's PID 1 and system bus; installed,
#   never started on the host); dbus-user-session: the session bus of the test user's
#   systemd --user in that lane (rootless --systemd-cgroup, tests/systemd/rootless.rs); gcc, libc6-dev: cargo's linker; docker.io,
#   containerd, podman, conmon, catatonit, slirp4netns, iptables, python3-grpcio (the CRI
#   client): the engines lane (tests/engine_*.rs start private daemons whether or not the
#   packages' services run); python3-seccomp: tests that build seccomp filters; criu:
#   checkpoint/restore (tests/checkpoint.rs, in the VM lane on kernel 6.1); dbus: a
#   private dbus-daemon and dbus-send/dbus-monitor for tests/dbus_client.rs; the rest:
#   tools the tests call.
test_packages=(
  busybox-static runc crun
  qemu-system-x86 xz-utils zstd e2fsprogs binutils systemd dbus dbus-user-session
  gcc libc6-dev pkg-config git ca-certificates
  docker.io containerd podman conmon catatonit slirp4netns iptables python3-grpcio
  python3-seccomp criu dbus
  hyperfine strace uidmap iproute2 procps util-linux psmisc jq tar
)

# install_test_deps WHO: apt-get install whichever of test_packages is missing (nothing to
# do, and no network, when all are installed). Waits for a dpkg lock held by e.g.
# unattended-upgrades instead of failing, and retries downloads.
install_test_deps() {
  local who=$1 p missing=() n
  for p in "${test_packages[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$who: installing ${missing[*]}"
  local apt_opts=(-q -o DPkg::Lock::Timeout=600 -o Acquire::Retries=5)
  export DEBIAN_FRONTEND=noninteractive
  # Finish any interrupted dpkg run first, or every install would refuse to start.
  dpkg --configure -a </dev/null
  for n in 1 2 3; do
    if apt-get "${apt_opts[@]}" update </dev/null &&
      apt-get "${apt_opts[@]}" install -y --no-install-recommends --no-upgrade "${missing[@]}" </dev/null; then
      return 0
    fi
    echo "$who: attempt $n of apt-get install failed" >&2
    [ "$n" = 3 ] || sleep $((n * 15))
  done
  echo "$who: could not install ${missing[*]}" >&2
  return 1
}

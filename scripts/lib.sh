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

#!/usr/bin/env bash
# Regenerate symbol-order.txt: the functions capsa runs in its common
# commands, in the order it first runs them. scripts/link-ordered.sh (the
# linker, .cargo/config.toml) hands them to lld's --symbol-ordering-file,
# which lays them out side by side at the start of .text. The kernel maps a
# file-backed page fault's neighbours too (fault-around, 64 KiB windows),
# so code spread over the whole 3.5 MiB text made every command resident in
# ~2.5 MiB of it; packed, a command touches a few windows. The peak RSS of
# every command and the start-up page faults drop accordingly
# (benches/startup.rs).
#
# Names carry hashes that change with rustc, dependencies and the code;
# the linker wrapper then matches them without hashes, which packs every
# instance of a hot generic too. `cargo bench --bench startup` says how many
# still match as is. Rerun this when few do:
#
#   scripts/symbol-order.sh        (as root; needs python3, busybox-static)
#
# It single-steps (ptrace) run, create, state, start, delete, exec, list and
# kill of a busybox container, every process included: minutes on a quiet
# host, half an hour on a busy one.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_root symbol-order
cargo_on_path symbol-order
command -v python3 >/dev/null || { echo "symbol-order: needs python3" >&2; exit 1; }

repo=$PWD
cargo build --release
bin=$(capsa_bin)
work=$(mktemp -d /tmp/capsa-symbol-order.XXXXXX)
root=$work/state
trap 'for id in $("$bin" --root "$root" list -q 2>/dev/null); do "$bin" --root "$root" delete --force "$id"; done; rm -rf "$work"' EXIT

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/"
for applet in sh true sleep; do ln -s busybox "$bundle/rootfs/bin/$applet"; done
"$bin" spec --bundle "$bundle"
config() { # ARGS_JSON: the workload, and a cgroup of its own
  python3 - "$bundle/config.json" "$1" <<'EOF'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
c["linux"]["cgroupsPath"] = "/capsa-symbol-order"
json.dump(c, open(path, "w"))
EOF
}
addrs=$work/addresses
trace() { python3 "$repo/scripts/symbol-order.py" trace "$addrs" "$bin" --root "$root" "$@" </dev/null >/dev/null; }
plain() { "$bin" --root "$root" "$@" </dev/null >/dev/null; }

cd "$bundle"
config '["/bin/true"]'
trace run so-run
trace create so-create
plain delete --force so-create
plain create so-life
trace state so-life
trace start so-life
sleep 0.2
trace delete so-life
config '["/bin/sleep", "1000"]'
plain run --detach so-exec
trace exec so-exec /bin/true
trace list
trace kill so-exec KILL
cd - >/dev/null

python3 scripts/symbol-order.py symbols "$bin" "$addrs" > symbol-order.txt
echo "symbol-order.txt written; rebuild (cargo build --release) to use it"

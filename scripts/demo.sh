#!/usr/bin/env bash
# Build capsa and run one real container with it, from a bundle made here:
# a busybox-static rootfs plus the config.json that `capsa spec` writes, set to
# run without a terminal and print something. Needs root (Debian 12 or similar).
#
#   scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_root demo
cargo_on_path demo

# What the demo needs from Debian, installed only if missing.
missing=()
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v jq >/dev/null || missing+=(jq)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q </dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

echo "== cargo build --release"
cargo build --release
capsa=$(capsa_bin)

work=$(mktemp -d /var/tmp/capsa-demo.XXXXXX)
root=$work/state # capsa's --root: keeps the demo's state apart from anything else
id=capsa-demo-$$
cleanup() {
  "$capsa" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== bundle in $work/bundle"
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
cd "$work/bundle"
"$capsa" spec
# No terminal (we are not handing capsa a console socket), and a workload that
# shows where it runs: pid 1 of its own pid namespace, its own hostname and root.
jq '.process.terminal = false
    | .process.args = ["sh", "-c",
        "echo \"hello from a capsa container: pid $$, hostname $(hostname), uid $(id -u)\"; echo \"its / holds: $(ls / | tr \"\\n\" \" \")\""]' \
  config.json >config.json.new
mv config.json.new config.json

echo "== capsa run $id"
status=0
output=$("$capsa" --root "$root" run "$id" </dev/null) || status=$?
echo "workload output:"
printf '%s\n' "$output" | sed 's/^/  | /'
echo "exit status: $status"
[ "$status" = 0 ] || exit "$status"

echo "== capsa delete $id"
"$capsa" --root "$root" delete --force "$id"
echo "demo: done"

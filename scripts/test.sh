#!/usr/bin/env bash
# The whole test suite, as root:
#   1. cargo build --release
#   2. host lane: `cargo test` on this machine (unit tests, doc tests and every
#      tests/*.rs except tests/cgroups_*.rs)
#   3. engines lane: tests/engine_{docker,podman,containerd}.rs, the real engines
#      (Debian's docker.io, podman, containerd) running their containers on capsa,
#      each with a private daemon/storage; skipped with a message if not installed
#   4. VM lane: each tests/cgroups_*.rs inside a pure cgroup v2 QEMU VM
#      (../shared/vm-lane/vm-run.sh as the cargo runner; VM_RUN overrides it)
#   5. oci-conformance/run against the release capsa, on the host and in the VM lane
#      (with known-failures/capsa.txt), if present
# Every part runs even if an earlier one failed (except after a failed build);
# the summary at the end lists each part, and the exit status is 1 if any failed.
# Installs nothing: .ci/run (or you) provides the Debian packages.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_root test
cargo_on_path test

summary=()
failed=0
trap 'echo "test.sh: stopped by a failing command at line $LINENO" >&2' ERR
section() { printf '\n======== %s ========\n' "$*"; }
# run_part NAME CMD...: runs one part, records PASS/FAIL and its duration.
run_part() {
  local name=$1 start=$SECONDS rc=0
  shift
  section "$name"
  "$@" </dev/null || rc=$?
  local verdict=PASS
  if [ "$rc" != 0 ]; then verdict="FAIL (exit $rc)"; failed=1; fi
  summary+=("$(printf '%-44s %-14s %4ss' "$name" "$verdict" $((SECONDS - start)))")
  return 0
}
finish() {
  section "summary"
  printf '%s\n' "${summary[@]}"
  if [ "$failed" = 0 ]; then echo "all parts passed"; else echo "SOME PARTS FAILED"; fi
  exit "$failed"
}

# Integration test targets, split by lane. A target is tests/NAME.rs or tests/NAME/main.rs.
host_tests=()
engine_tests=()
vm_tests=()
for f in tests/*.rs tests/*/main.rs; do
  [ -e "$f" ] || continue
  name=${f#tests/}
  name=${name%/main.rs}
  name=${name%.rs}
  case $name in
    cgroups_*) vm_tests+=("$name") ;;
    engine_*) engine_tests+=("$name") ;;
    *) host_tests+=("$name") ;;
  esac
done

run_part "build: cargo build --release" cargo build --release
[ "$failed" = 0 ] || finish

host_args=(--lib --bins)
for t in "${host_tests[@]}"; do host_args+=(--test "$t"); done
run_part "host lane: cargo test (${#host_tests[@]} test files)" cargo test --no-fail-fast "${host_args[@]}"
run_part "host lane: doc tests" cargo test --doc

if [ ${#engine_tests[@]} -gt 0 ]; then
  engine_args=()
  for t in "${engine_tests[@]}"; do engine_args+=(--test "$t"); done
  run_part "engines lane: ${engine_tests[*]#engine_}" cargo test --no-fail-fast "${engine_args[@]}"
fi

if [ ${#vm_tests[@]} -gt 0 ]; then
  vm_run=${VM_RUN:-$repo/../shared/vm-lane/vm-run.sh}
  if [ -x "$vm_run" ]; then
    vm_run=$(cd "$(dirname "$vm_run")" && pwd -P)/$(basename "$vm_run")
    # Build first, on the host, so each VM only runs a test binary.
    vm_args=()
    for t in "${vm_tests[@]}"; do vm_args+=(--test "$t"); done
    run_part "VM lane: build ${vm_tests[*]}" cargo test --no-run "${vm_args[@]}"
    for t in "${vm_tests[@]}"; do
      run_part "VM lane (cgroup v2): $t" \
        env CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$vm_run $repo" cargo test --test "$t"
    done
  else
    section "VM lane"
    echo "no VM lane script at $vm_run (set VM_RUN)"
    summary+=("$(printf '%-44s %-14s' "VM lane (cgroup v2)" "FAIL (no vm-run.sh)")")
    failed=1
  fi
else
  summary+=("$(printf '%-44s %-14s' "VM lane (cgroup v2)" "none (no tests/cgroups_*.rs)")")
fi

# oci-conformance/run RUNTIME [--vm] prints "N passed, M failed, K skipped" last; M counts
# the failures it does not list as known, and it exits non-zero when M > 0.
# shellcheck disable=SC2317 # called through run_part
conformance() {
  local log rc=0 last
  log=$(mktemp /var/tmp/capsa-conformance.XXXXXX)
  sh oci-conformance/run "$@" 2>&1 | tee "$log" || rc=$?
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
  rm -f "$log"
  [ "$rc" = 0 ] || return "$rc"
  [ -n "$last" ] || { echo "conformance: no 'N passed, M failed' line" >&2; return 1; }
  [[ $last =~ ([0-9]+)\ failed ]] && [ "${BASH_REMATCH[1]}" = 0 ]
}
if [ -e oci-conformance/run ]; then
  capsa=$(capsa_bin)
  known=()
  if [ -f oci-conformance/known-failures/capsa.txt ]; then
    known=(--known "$repo/oci-conformance/known-failures/capsa.txt")
  fi
  # CONFORMANCE_ARGS: extra driver options for both lanes, e.g. "--work DIR" beside another
  # run on this host.
  # shellcheck disable=SC2086 # word splitting wanted
  run_part "OCI conformance (host)" conformance "$capsa" "${known[@]}" ${CONFORMANCE_ARGS:-}
  # `run --vm` shares only oci-conformance/ with the VM, so the binary under test must
  # live below it: a copy in its (ignored) target/ directory.
  vm_capsa=$repo/oci-conformance/target/capsa-under-test
  mkdir -p "$(dirname "$vm_capsa")"
  cp "$capsa" "$vm_capsa"
  # shellcheck disable=SC2086 # word splitting wanted
  run_part "OCI conformance (VM lane, cgroup v2)" conformance --vm "$vm_capsa" --name capsa "${known[@]}" ${CONFORMANCE_ARGS:-}
else
  summary+=("$(printf '%-44s %-14s' "OCI conformance" "none (no oci-conformance/run)")")
fi

finish

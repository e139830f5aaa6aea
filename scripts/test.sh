#!/usr/bin/env bash
# The whole test suite, as root, from a clone and nothing else (Debian 12):
#   0. apt-get install whatever of scripts/lib.sh's test_packages is missing (nothing to do,
#      no network, on a second run; CAPSA_TEST_NO_INSTALL=1 skips this step)
#   1. cargo build --release
#   2. host lane: `cargo test` on this machine (unit tests, doc tests and every
#      tests/*.rs except tests/cgroups_*.rs, tests/systemd_*.rs and tests/engine_*.rs)
#   3. engines lane: tests/engine_{docker,podman,containerd}.rs, the real engines
#      (Debian's docker.io, podman, containerd) running their containers on capsa,
#      each with a private daemon/storage
#   4. VM lane: each tests/cgroups_*.rs inside a pure cgroup v2 QEMU VM
#      (scripts/vm-run.sh as the cargo runner; VM_RUN overrides it), and
#      tests/checkpoint.rs (also in the host lane, where its CRIU cases skip when `criu
#      check` fails) in one VM booted on Debian 12's kernel 6.1, which CRIU 3.17 supports
#      (CRIU_KERNEL_PKG overrides the package)
#   5. systemd VM lane: each tests/systemd_*.rs inside a QEMU VM that boots systemd as
#      PID 1 (scripts/vm-run-systemd.sh; VM_RUN_SYSTEMD overrides it), once on pure
#      cgroup v2 and once on a hybrid (v1) systemd boot
#   6. oci-conformance/run against the release capsa, on the host, in the VM lane and in
#      the systemd VM lane (--systemd: the cgroup tests with --systemd-cgroup; once per
#      cgroup mode, unified and hybrid)
#      (with known-failures/capsa.txt), and on the host in rootless mode as the unprivileged
#      test user capsa-rootless (made here if missing; known-failures/capsa-rootless.txt)
# Every part runs even if an earlier one failed (except after a failed build).
#
# Skips: a test that cannot run calls common::skip(reason), which appends
# "SKIPPED <binary>::<test>: <reason>" to $CAPSA_SKIP_LOG (set here, one file per part, under
# target/test-skips/, with each part's output). libtest counts such a test as passed; here it counts as skipped, and
# each skip must be listed in tests/expected-skips.txt: an unexpected skip fails its part,
# an expected one that no longer happens is reported as a warning.
#
# The summary lists each part (verdict, passed/failed/skipped, time), the skipped tests with
# their reasons, one line per lane, and last "N passed, M failed, K skipped" over everything
# (a part that fails without a count of failed tests, e.g. a build error, counts as one
# failure). The exit status is 1 if any part failed.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Physical path: the VM lane shares this directory at the same path in the guest.
repo=$(pwd -P)
cd "$repo"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_root test
if [ "${CAPSA_TEST_NO_INSTALL:-0}" != 1 ]; then install_test_deps test; fi
cargo_on_path test

expected_skips=$repo/tests/expected-skips.txt
skip_dir=$repo/target/test-skips
rm -rf "$skip_dir"
mkdir -p "$skip_dir"

summary=()
skip_report=()
warnings=()
failed=0
parts=0
total_pass=0 total_fail=0 total_skip=0
declare -A lane_pass=() lane_fail=() lane_skip=() lane_bad=()
lanes=()
trap 'echo "test.sh: stopped by a failing command at line $LINENO" >&2' ERR
section() { printf '\n======== %s ========\n' "$*"; }

# expected_for LANE: "ID OPTIONAL" for each test tests/expected-skips.txt expects may skip in
# LANE. File format: "ID REASON" (# comments, blank lines); ID is <binary>::<test> (or
# <binary>::* for a whole file), with "@host", "@engines", "@vm" or "@systemd" appended for one lane only,
# and "?" in front when the skip depends on the host (OPTIONAL 1: its absence is no news).
expected_for() {
  [ -f "$expected_skips" ] || return 0
  awk -v lane="$1" '
    /^[[:space:]]*(#|$)/ { next }
    { id = $1; opt = 0
      if (substr(id, 1, 1) == "?") { opt = 1; id = substr(id, 2) }
      at = index(id, "@")
      if (at == 0) print id, opt
      else if (substr(id, at + 1) == lane) print substr(id, 1, at - 1), opt }' "$expected_skips"
}

# check_skips LANE LOG BINARIES...: list LOG's skips, verify them against the expected ones for
# the test binaries this part ran. Sets n_skip (distinct skipped ids), n_skip_tests (those that
# libtest counted as passed: all but whole-file "<binary>::*" skips) and unexpected.
check_skips() {
  local lane=$1 log=$2 id opt reason bin
  shift 2
  local -A ran=() expected=() seen=()
  for bin in "$@"; do ran[$bin]=1; done
  while read -r id opt; do expected[$id]=$opt; done < <(expected_for "$lane")
  n_skip=0 n_skip_tests=0 unexpected=0
  if [ -s "$log" ]; then
    while IFS= read -r line; do
      [[ $line =~ ^SKIPPED\ ([^:]+(::[^:]+)*):\ (.*)$ ]] || continue
      id=${BASH_REMATCH[1]} reason=${BASH_REMATCH[3]}
      [ -z "${seen[$id]:-}" ] || continue
      seen[$id]=1
      n_skip=$((n_skip + 1))
      [[ $id == *::\* ]] || n_skip_tests=$((n_skip_tests + 1))
      if [ -n "${expected[$id]:-}" ]; then
        skip_report+=("  $lane  $id: $reason")
      else
        skip_report+=("  $lane  $id: $reason   <- UNEXPECTED (not in tests/expected-skips.txt)")
        unexpected=$((unexpected + 1))
      fi
    done <"$log"
  fi
  for id in "${!expected[@]}"; do
    bin=${id%%::*}
    if [ "${expected[$id]}" = 0 ] && [ -n "${ran[$bin]:-}" ] && [ -z "${seen[$id]:-}" ]; then
      warnings+=("expected skip did not happen ($lane): $id (remove it from tests/expected-skips.txt?)")
    fi
  done
}

# run_part NAME CMD...: runs one part (a build), records PASS/FAIL and its duration; a
# failure counts as one failed test in the totals.
run_part() {
  local name=$1 start=$SECONDS rc=0
  shift
  section "$name"
  "$@" </dev/null || rc=$?
  local verdict=PASS
  if [ "$rc" != 0 ]; then
    verdict="FAIL (exit $rc)"
    failed=1
    total_fail=$((total_fail + 1))
  fi
  summary+=("$(printf '%-46s %-22s %5ss' "$name" "$verdict" $((SECONDS - start)))")
  return 0
}

# count_lane LABEL PASSED FAILED SKIPPED OK: add to a lane's ("host lane", "conformance vm
# lane"...) and the overall totals.
count_lane() {
  local lane=$1
  if [ -z "${lane_pass[$lane]+x}" ]; then
    lanes+=("$lane")
    lane_pass[$lane]=0 lane_fail[$lane]=0 lane_skip[$lane]=0 lane_bad[$lane]=0
  fi
  lane_pass[$lane]=$((lane_pass[$lane] + $2))
  lane_fail[$lane]=$((lane_fail[$lane] + $3))
  lane_skip[$lane]=$((lane_skip[$lane] + $4))
  [ "$5" = 1 ] || lane_bad[$lane]=1
  total_pass=$((total_pass + $2)) total_fail=$((total_fail + $3)) total_skip=$((total_skip + $4))
}

# test_part LANE NAME BINARIES -- CMD...: a cargo test run. BINARIES (space-separated test
# target names) are the ones whose expected skips apply. Counts libtest's "test result:"
# lines, minus the tests that reported a skip; fails on a failing command or an unexpected
# skip (or a test marked #[ignore]: use common::skip, which says why).
test_part() {
  local lane=$1 name=$2 bins=$3 start=$SECONDS rc=0
  shift 4
  section "$name"
  parts=$((parts + 1))
  local out=$skip_dir/part-$parts.out log=$skip_dir/part-$parts.skips
  : >"$out"
  : >"$log"
  CAPSA_SKIP_LOG=$log "$@" </dev/null 2>&1 | tee "$out" || rc=$?
  local passed=0 nfail=0 ignored=0
  while IFS= read -r line; do
    if [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed(\;\ ([0-9]+)\ ignored)? ]]; then
      passed=$((passed + BASH_REMATCH[1]))
      nfail=$((nfail + BASH_REMATCH[2]))
      ignored=$((ignored + ${BASH_REMATCH[4]:-0}))
    fi
  done < <(grep -a '^test result: ' "$out" || true)
  # shellcheck disable=SC2086 # a word list
  check_skips "$lane" "$log" $bins
  passed=$((passed - n_skip_tests))
  [ "$passed" -ge 0 ] || passed=0
  local skipped=$((n_skip + ignored)) verdict=PASS
  if [ "$rc" != 0 ]; then
    verdict="FAIL (exit $rc)"
    [ "$nfail" -gt 0 ] || nfail=1
  elif [ "$unexpected" -gt 0 ]; then
    verdict="FAIL ($unexpected unexpected skip)"
  elif [ "$ignored" -gt 0 ]; then
    verdict="FAIL ($ignored #[ignore])"
  fi
  [ "$verdict" = PASS ] || failed=1
  count_lane "$lane lane" "$passed" "$nfail" "$skipped" "$([ "$verdict" = PASS ] && echo 1 || echo 0)"
  summary+=("$(printf '%-46s %-22s %5ss  %s passed, %s failed, %s skipped' "$name" "$verdict" \
    $((SECONDS - start)) "$passed" "$nfail" "$skipped")")
  return 0
}

finish() {
  section "summary"
  printf '%s\n' "${summary[@]}"
  if [ ${#skip_report[@]} -gt 0 ]; then
    echo
    echo "skipped tests (lane, test, reason):"
    printf '%s\n' "${skip_report[@]}"
  fi
  if [ ${#warnings[@]} -gt 0 ]; then
    echo
    printf 'warning: %s\n' "${warnings[@]}"
  fi
  echo
  local lane
  for lane in "${lanes[@]}"; do
    printf '%s: %s, %s passed, %s failed, %s skipped\n' "$lane" \
      "$([ "${lane_bad[$lane]}" = 0 ] && echo PASS || echo FAIL)" \
      "${lane_pass[$lane]}" "${lane_fail[$lane]}" "${lane_skip[$lane]}"
  done
  if [ "$failed" = 0 ]; then echo "all parts passed"; else echo "SOME PARTS FAILED"; fi
  echo "$total_pass passed, $total_fail failed, $total_skip skipped"
  exit "$failed"
}

# Integration test targets, split by lane. A target is tests/NAME.rs or tests/NAME/main.rs.
host_tests=()
engine_tests=()
vm_tests=()
systemd_tests=()
for f in tests/*.rs tests/*/main.rs; do
  [ -e "$f" ] || continue
  name=${f#tests/}
  name=${name%/main.rs}
  name=${name%.rs}
  case $name in
    cgroups_*) vm_tests+=("$name") ;;
    systemd_*) systemd_tests+=("$name") ;;
    engine_*) engine_tests+=("$name") ;;
    *) host_tests+=("$name") ;;
  esac
done

run_part "build: cargo build --release" cargo build --release
[ "$failed" = 0 ] || finish

host_args=(--lib --bins)
for t in "${host_tests[@]}"; do host_args+=(--test "$t"); done
test_part host "host lane: cargo test (${#host_tests[@]} test files)" "${host_tests[*]}" -- \
  cargo test --no-fail-fast "${host_args[@]}"
test_part host "host lane: doc tests" "" -- cargo test --doc

if [ ${#engine_tests[@]} -gt 0 ]; then
  engine_args=()
  for t in "${engine_tests[@]}"; do engine_args+=(--test "$t"); done
  test_part engines "engines lane: ${engine_tests[*]#engine_}" "${engine_tests[*]}" -- \
    cargo test --no-fail-fast "${engine_args[@]}"
fi

if [ ${#vm_tests[@]} -gt 0 ]; then
  vm_run=${VM_RUN:-$repo/scripts/vm-run.sh}
  if [ -x "$vm_run" ]; then
    vm_run=$(cd "$(dirname "$vm_run")" && pwd -P)/$(basename "$vm_run")
    # Build first, on the host, so each VM only runs a test binary.
    vm_args=()
    for t in "${vm_tests[@]}"; do vm_args+=(--test "$t"); done
    run_part "VM lane: build (on the host)" cargo test --no-run "${vm_args[@]}" --test checkpoint
    for t in "${vm_tests[@]}"; do
      # The skip log is in target/, below the shared directory: the guest writes it
      # at the same path.
      test_part vm "VM lane (cgroup v2): $t" "$t" -- \
        env VM_ENV="CAPSA_SKIP_LOG ${VM_ENV:-}" \
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$vm_run $repo" cargo test --test "$t"
    done
    # checkpoint/restore: Debian 12's CRIU 3.17 needs Debian 12's kernel (6.1); one boot,
    # with podman's checkpoint/restore on capsa and runc (~8 min of it under TCG: a longer limit).
    test_part vm "VM lane (kernel 6.1, CRIU): checkpoint" "checkpoint" -- \
      env VM_ENV="CAPSA_SKIP_LOG ${VM_ENV:-}" VM_TIMEOUT="${CRIU_VM_TIMEOUT:-1800}" VM_KERNEL_PKG="${CRIU_KERNEL_PKG:-linux-image-6.1.0-57-amd64}" \
      CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$vm_run $repo" cargo test --test checkpoint
  else
    section "VM lane"
    echo "VM lane runner $vm_run is not executable"
    summary+=("$(printf '%-46s %-22s' "VM lane (cgroup v2)" "FAIL (no vm-run.sh)")")
    failed=1
    total_fail=$((total_fail + 1))
  fi
else
  summary+=("$(printf '%-46s %-22s' "VM lane (cgroup v2)" "none (no tests/cgroups_*.rs)")")
fi

# The systemd VM lane: one boot per test binary and cgroup mode (VM_CGROUP_MODE of
# scripts/vm-run-systemd.sh), many checks per boot. The pure v2 boot of systemd_cgroup
# runs podman as root and rootless (three runtimes): 9.5 min under TCG on a loaded
# 2-CPU host, so its limit is above vm-run's default 900 s (SYSTEMD_VM_TIMEOUT).
if [ ${#systemd_tests[@]} -gt 0 ]; then
  sd_run=${VM_RUN_SYSTEMD:-$repo/scripts/vm-run-systemd.sh}
  if [ -x "$sd_run" ]; then
    sd_run=$(cd "$(dirname "$sd_run")" && pwd -P)/$(basename "$sd_run")
    sd_args=()
    for t in "${systemd_tests[@]}"; do sd_args+=(--test "$t"); done
    run_part "VM lane (systemd): build (on the host)" cargo test --no-run "${sd_args[@]}"
    for mode in unified hybrid; do
      for t in "${systemd_tests[@]}"; do
        # The engines under TCG (Docker, containerd's CRI) take minutes on a loaded host:
        # a longer limit than vm-run-systemd.sh's 15 min default.
        # dockerd, containerd and their pods get more room than the 2 GiB default.
        mem=${VM_MEM:-2G}
        [ "$t" = systemd_engines ] && mem=${VM_MEM:-4G}
        test_part systemd "VM lane (systemd, $mode): $t" "$t" -- \
          env VM_CGROUP_MODE=$mode VM_MEM="$mem" VM_TIMEOUT="${SYSTEMD_VM_TIMEOUT:-1800}" VM_ENV="CAPSA_SKIP_LOG SD_ENGINES_WATCHDOG SD_ENGINES_RUNC ${VM_ENV:-}" \
          CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$sd_run $repo" cargo test --test "$t"
      done
    done
  else
    section "VM lane (systemd)"
    echo "systemd VM lane runner $sd_run is not executable"
    summary+=("$(printf '%-46s %-22s' "VM lane (systemd)" "FAIL (no vm-run-systemd.sh)")")
    failed=1
    total_fail=$((total_fail + 1))
  fi
else
  summary+=("$(printf '%-46s %-22s' "VM lane (systemd)" "none (no tests/systemd_*.rs)")")
fi

# oci-conformance/run RUNTIME [--vm] prints "N passed, M failed, K skipped" last; M counts
# the failures it does not list as known, and it exits non-zero when M > 0. Its skips are
# the spec sentences it cannot test here, each listed with the reason in its own output.
# shellcheck disable=SC2317 # called through conformance_part
conformance() {
  local lane=$1 name=$2 start=$SECONDS rc=0 last
  shift 2
  section "$name"
  local log=$skip_dir/conformance-$lane.out
  sh oci-conformance/run "$@" </dev/null 2>&1 | tee "$log" || rc=$?
  last=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
  local p=0 f=0 s=0 verdict=PASS
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[4]:-0}
  fi
  if [ "$rc" != 0 ]; then
    verdict="FAIL (exit $rc)"
  elif [ -z "$last" ]; then
    verdict="FAIL (no totals line)"
  elif [ "$f" != 0 ]; then
    verdict="FAIL"
  fi
  if [ "$verdict" != PASS ]; then
    failed=1
    [ "$f" -gt 0 ] || f=1
  fi
  count_lane "conformance $lane lane" "$p" "$f" "$s" "$([ "$verdict" = PASS ] && echo 1 || echo 0)"
  summary+=("$(printf '%-46s %-22s %5ss  %s passed, %s failed, %s skipped' "$name" "$verdict" \
    $((SECONDS - start)) "$p" "$f" "$s")")
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
  conformance host "OCI conformance (host)" "$capsa" "${known[@]}" ${CONFORMANCE_ARGS:-}
  # `run --vm` shares only oci-conformance/ with the VM, so the binary under test must
  # live below it: a copy in its (ignored) target/ directory.
  vm_capsa=$repo/oci-conformance/target/capsa-under-test
  mkdir -p "$(dirname "$vm_capsa")"
  cp "$capsa" "$vm_capsa"
  # shellcheck disable=SC2086 # word splitting wanted
  conformance vm "OCI conformance (VM lane, cgroup v2)" --vm "$vm_capsa" --name capsa "${known[@]}" ${CONFORMANCE_ARGS:-}
  # The same cgroup tests with --systemd-cgroup (cgroupsPath slice:prefix:name) in the
  # systemd VM lane (systemd as PID 1), one boot per cgroup mode: pure cgroup v2, then
  # hybrid v1 (VM_CGROUP_MODE of scripts/vm-run-systemd.sh); VM_RUN_SYSTEMD is honoured.
  for mode in unified hybrid; do
    # shellcheck disable=SC2086 # word splitting wanted
    VM_CGROUP_MODE=$mode conformance "systemd-$mode" "OCI conformance (systemd VM, $mode, --systemd-cgroup)" \
      --systemd "$vm_capsa" --name capsa "${known[@]}" ${CONFORMANCE_ARGS:-}
  done
  # Rootless mode: every runtime command as the unprivileged test user (the one
  # tests/common/rootless.rs makes; the same account here if that has not run yet), rootless
  # configs as `runc spec --rootless` writes them. Its own work directory, so that it never
  # shares state with the host run.
  rl_user=capsa-rootless
  if ! id "$rl_user" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/var/lib/$rl_user" --shell /usr/sbin/nologin "$rl_user" || true
  fi
  rl_known=()
  if [ -f oci-conformance/known-failures/capsa-rootless.txt ]; then
    rl_known=(--known "$repo/oci-conformance/known-failures/capsa-rootless.txt")
  fi
  # shellcheck disable=SC2086 # word splitting wanted
  conformance rootless "OCI conformance (host, rootless)" "$capsa" --rootless "$rl_user" --name capsa \
    --work "/run/oci-conformance/rootless-$$" "${rl_known[@]}" ${CONFORMANCE_ARGS:-}
else
  summary+=("$(printf '%-46s %-22s' "OCI conformance" "none (no oci-conformance/run)")")
fi

finish

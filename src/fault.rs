//! Fault injection for the tests (debug builds only; the release binary
//! has none): `CAPSA_FAULT=<step>` makes capsa SIGKILL itself when it
//! reaches the named step, `CAPSA_FAULT=<step>:stop` SIGSTOPs it there
//! (the test then looks around and kills it). The steps are the points
//! between two changes to the host that a crash could separate; the list
//! is `STEPS`, which the fault-injection tests walk.

/// Every named step, in the order a command reaches them.
pub const STEPS: &[&str] = &[
    // create (and run): state dir made and locked; cgroups made; init
    // ready (cloned, placed, rootfs done); state.json written, init not yet
    // told; init detached from our death.
    "create.dir",
    "create.cgroup",
    "create.spawned",
    "create.saved",
    "create.done",
    // start: locked and loaded; init released, `started` not yet saved.
    "start.locked",
    "start.released",
    // exec: locked and loaded; process spawned.
    "exec.locked",
    "exec.spawned",
    // delete: processes killed; cgroups removed, state dir not yet.
    "delete.killed",
    "delete.cgroup",
];

/// Steps only the systemd cgroup driver reaches (create with
/// --systemd-cgroup, in `create.cgroup`..`create.spawned`): the init exists
/// and its unit is about to be started; the unit has started.
#[cfg_attr(not(debug_assertions), allow(dead_code))] // checked by `point` in debug builds
pub const SYSTEMD_STEPS: &[&str] = &["create.unit", "create.unit-started"];

/// Stop or kill this process here if `CAPSA_FAULT` names `step`.
#[cfg(debug_assertions)]
pub fn point(step: &str) {
    debug_assert!(
        STEPS.contains(&step) || SYSTEMD_STEPS.contains(&step),
        "unknown fault step {step}"
    );
    let Some(want) = std::env::var_os("CAPSA_FAULT") else {
        return;
    };
    let want = want.to_string_lossy();
    let (name, action) = want.split_once(':').unwrap_or((&want, "kill"));
    if name != step {
        return;
    }
    let sig = if action == "stop" {
        libc::SIGSTOP
    } else {
        libc::SIGKILL
    };
    // SAFETY: raise with a constant signal number.
    unsafe { libc::raise(sig) };
}

/// Release builds: nothing (inlined away).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_step: &str) {}

//! What a config.json can ask for that the kernel would refuse, or take to
//! mean something else, checked in the parent before anything is created:
//! reserved ids, too many groups or mounts, an argument vector execve will
//! not take, NUL bytes, out-of-range values. Each error names the field.
//! (Without these, some would fail late with a bare errno, some at `start`
//! instead of `create`, and uid 4294967295 would run the workload as root:
//! to setresuid, -1 means "leave unchanged".)

use oci_spec::runtime::{PosixRlimitType, Process, Spec};
use serde_json::Value;

/// A refused field and why.
pub type Refusal = (String, String);

fn refuse(field: impl Into<String>, msg: impl Into<String>) -> Refusal {
    (field.into(), msg.into())
}

/// (uid_t)-1 / (gid_t)-1: "no change" to the set*id calls, never an id.
const NO_ID: u32 = u32::MAX;
/// NGROUPS_MAX.
const MAX_GROUPS: usize = 65536;
/// MAX_ARG_STRLEN: the longest single argument or environment string.
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// ARG_MAX: execve's floor for the argument space.
const MIN_ARG_SPACE: u64 = 32 * 4096;
/// execve's ceiling for the argument space: 3/4 of _STK_LIM (8 MiB).
const MAX_ARG_SPACE: u64 = 6 * 1024 * 1024;
/// Room kept for what capsa adds (HOME, the trampoline's own arguments).
const ARG_SLACK: u64 = 8192;
/// HOST_NAME_MAX (also the limit for the NIS domain name).
const MAX_HOSTNAME: usize = 64;

/// The process-level checks, for config.json's `process` and for `exec`'s.
pub fn check_process(p: &Process, prefix: &str) -> Result<(), Refusal> {
    let user = p.user();
    if user.uid() == NO_ID {
        return Err(refuse(
            format!("{prefix}.user.uid"),
            "4294967295 is not a valid uid",
        ));
    }
    if user.gid() == NO_ID {
        return Err(refuse(
            format!("{prefix}.user.gid"),
            "4294967295 is not a valid gid",
        ));
    }
    if let Some(gids) = user.additional_gids() {
        if gids.len() > MAX_GROUPS {
            return Err(refuse(
                format!("{prefix}.user.additionalGids"),
                format!(
                    "{} groups, the kernel takes at most {MAX_GROUPS}",
                    gids.len()
                ),
            ));
        }
        if let Some(i) = gids.iter().position(|g| *g == NO_ID) {
            return Err(refuse(
                format!("{prefix}.user.additionalGids[{i}]"),
                "4294967295 is not a valid gid",
            ));
        }
    }
    if p.cwd().as_os_str().as_encoded_bytes().contains(&0) {
        return Err(refuse(format!("{prefix}.cwd"), "contains a NUL byte"));
    }
    if let Some(adj) = p.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return Err(refuse(
            format!("{prefix}.oomScoreAdj"),
            format!("{adj} is out of range (-1000..=1000)"),
        ));
    }
    check_exec_space(p, prefix)
}

/// execve refuses (E2BIG) a single string over MAX_ARG_STRLEN, and strings
/// plus pointers over a quarter of the stack limit (between 128 KiB and
/// 6 MiB): refuse here, at create, rather than at `start`.
fn check_exec_space(p: &Process, prefix: &str) -> Result<(), Refusal> {
    let args = p.args().as_deref().unwrap_or(&[]);
    let env = p.env().as_deref().unwrap_or(&[]);
    for (field, list) in [("args", args), ("env", env)] {
        if let Some(i) = list.iter().position(|s| s.len() + 1 > MAX_ARG_STRLEN) {
            return Err(refuse(
                format!("{prefix}.{field}[{i}]"),
                format!("longer than the {MAX_ARG_STRLEN} bytes execve takes per string"),
            ));
        }
    }
    let ptr = std::mem::size_of::<usize>() as u64;
    let bytes: u64 = args
        .iter()
        .chain(env)
        .map(|s| s.len() as u64 + 1 + ptr)
        .sum::<u64>()
        + 2 * ptr;
    let space = (stack_limit(p) / 4).clamp(MIN_ARG_SPACE, MAX_ARG_SPACE);
    if bytes + ARG_SLACK > space {
        let field = if env.len() > args.len() {
            "env"
        } else {
            "args"
        };
        return Err(refuse(
            format!("{prefix}.{field}"),
            format!(
                "{} arguments and {} environment entries take {bytes} bytes; execve takes at most {space} with this stack limit",
                args.len(),
                env.len()
            ),
        ));
    }
    Ok(())
}

/// The workload's RLIMIT_STACK soft limit: process.rlimits', else ours.
fn stack_limit(p: &Process) -> u64 {
    if let Some(r) = p
        .rlimits()
        .iter()
        .flatten()
        .find(|r| r.typ() == PosixRlimitType::RlimitStack)
    {
        return r.soft();
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) } != 0 {
        return 8 * 1024 * 1024;
    }
    lim.rlim_cur
}

/// The container-level checks.
pub fn check_spec(spec: &Spec) -> Result<(), Refusal> {
    for (field, name) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if let Some(n) = name
            && n.len() > MAX_HOSTNAME
        {
            return Err(refuse(
                field,
                format!("{} bytes, the kernel takes at most {MAX_HOSTNAME}", n.len()),
            ));
        }
    }
    check_mount_count(spec)
}

/// Every mount the container makes counts against fs.mount-max in its mount
/// namespace, which starts as a copy of ours.
fn check_mount_count(spec: &Spec) -> Result<(), Refusal> {
    let linux = spec.linux().as_ref();
    let count = spec.mounts().as_ref().map_or(0, Vec::len)
        + linux
            .and_then(|l| l.masked_paths().as_ref())
            .map_or(0, Vec::len)
        + linux
            .and_then(|l| l.readonly_paths().as_ref())
            .map_or(0, Vec::len);
    // Only an unusual config is worth two file reads.
    if count < 1000 {
        return Ok(());
    }
    let max: usize = std::fs::read_to_string("/proc/sys/fs/mount-max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100_000);
    // Bytes: mount points need not be UTF-8.
    let ours = std::fs::read("/proc/self/mountinfo")
        .map(|s| s.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0);
    if ours + count > max {
        return Err(refuse(
            "mounts",
            format!(
                "{count} mounts (with maskedPaths and readonlyPaths) on top of the {ours} the namespace starts with exceed fs.mount-max ({max})"
            ),
        ));
    }
    Ok(())
}

/// NUL bytes cannot reach a syscall: the kernel would cut the string there.
/// JSON can only carry one as the escape `\u0000`, so the raw text is
/// scanned first and only a hit pays for finding the field.
pub fn check_nul(json: &[u8]) -> Result<(), Refusal> {
    if !json.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return Ok(()); // the typed parse reports the syntax error
    };
    match nul_path(&v, String::new()) {
        Some(field) => Err(refuse(field, "contains a NUL byte")),
        None => Ok(()),
    }
}

/// The JSON path of the first string (or key) holding a NUL byte.
fn nul_path(v: &Value, at: String) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then_some(at),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, format!("{at}[{i}]"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                return Some(here);
            }
            nul_path(x, here)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{ProcessBuilder, UserBuilder};

    #[test]
    fn nul_is_found_with_its_path() {
        assert!(check_nul(br#"{"a": "b"}"#).is_ok());
        let e = check_nul(br#"{"process": {"args": ["x", "y\u0000z"]}}"#).unwrap_err();
        assert_eq!(e.0, "process.args[1]");
        let e = check_nul(br#"{"annotations": {"k\u0000": "v"}}"#).unwrap_err();
        assert_eq!(e.0, "annotations.k\0");
        // An escaped backslash followed by "u0000" is no NUL.
        assert!(check_nul(br#"{"a": "\\u0000"}"#).is_ok());
    }

    #[test]
    fn reserved_ids_and_ranges() {
        let mut p = ProcessBuilder::default().build().expect("process");
        assert!(check_process(&p, "process").is_ok());
        p.set_user(UserBuilder::default().uid(NO_ID).build().expect("user"));
        assert_eq!(
            check_process(&p, "process").unwrap_err().0,
            "process.user.uid"
        );
        p.set_user(
            UserBuilder::default()
                .additional_gids(vec![1, NO_ID])
                .build()
                .expect("user"),
        );
        assert_eq!(
            check_process(&p, "process").unwrap_err().0,
            "process.user.additionalGids[1]"
        );
        p.set_user(UserBuilder::default().build().expect("user"));
        p.set_oom_score_adj(Some(1001));
        assert_eq!(
            check_process(&p, "process").unwrap_err().0,
            "process.oomScoreAdj"
        );
    }

    #[test]
    fn exec_space() {
        let mut p = ProcessBuilder::default().build().expect("process");
        p.set_args(Some(vec!["x".repeat(MAX_ARG_STRLEN)]));
        assert_eq!(
            check_process(&p, "process").unwrap_err().0,
            "process.args[0]"
        );
        p.set_args(Some(vec!["true".into()]));
        p.set_env(Some((0..1_000_000).map(|i| format!("V{i}=x")).collect()));
        assert_eq!(check_process(&p, "process").unwrap_err().0, "process.env");
        p.set_env(Some((0..1000).map(|i| format!("V{i}=x")).collect()));
        assert!(check_process(&p, "process").is_ok());
    }
}

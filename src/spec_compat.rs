//! Parsing config.json (and `exec --process` JSON) into oci-spec types, with
//! the runtime-spec spellings oci-spec 0.10 refuses put right first:
//!
//! - process.scheduler.flags: the spec's `SCHED_FLAG_RESET_ON_FORK` and
//!   `SCHED_FLAG_DL_OVERRUN` are `SCHED_RESET_ON_FORK` and
//!   `SCHED_FLAG_D_L_OVERRUN` to oci-spec's serde names;
//! - process.execCPUAffinity: an empty `initial` or `final` means "not set"
//!   (config.md), but oci-spec's pattern rejects "";
//! - process.capabilities: a name oci-spec does not know is dropped with a
//!   warning naming its field, as config.md asks ("MUST be logged as a
//!   warning", runtimes "SHOULD NOT fail") and runc >= 1.2 does;
//! - linux.memoryPolicy: `{}` (no mode, no nodes) means no policy, as
//!   with runc, where oci-spec requires `mode`.
//!
//! The rewrite happens only after a first parse failed at one of those
//! fields, so a config that does not use them costs nothing more.

use oci_spec::runtime::{Capability, LinuxResources};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub type ParseError = serde_path_to_error::Error<serde_json::Error>;

/// Deserialize `data`; errors carry the JSON path of the bad field.
pub fn from_slice<T: DeserializeOwned>(data: &[u8]) -> Result<T, ParseError> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    let err = match serde_path_to_error::deserialize(de) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let path = err.path().to_string();
    if ![
        "scheduler",
        "execCPUAffinity",
        "capabilities",
        "memoryPolicy",
    ]
    .iter()
    .any(|f| path.contains(f))
    {
        return Err(err);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return Err(err);
    };
    // An empty linux.memoryPolicy (no mode, no nodes) sets nothing, as with
    // runc; oci-spec requires `mode`.
    if let Some(l) = v.get_mut("linux").and_then(Value::as_object_mut)
        && l.get("memoryPolicy")
            .and_then(Value::as_object)
            .is_some_and(|m| m.get("mode").is_none() && m.get("nodes").is_none_or(|n| n == ""))
    {
        l.remove("memoryPolicy");
    }
    if let Some(p) = v.get_mut("process") {
        fix_process(p, "process.");
    } else {
        // `exec --process`: the document is a process.
        fix_process(&mut v, "");
    }
    serde_path_to_error::deserialize(v)
}

fn fix_process(p: &mut Value, prefix: &str) {
    drop_unknown_caps(p, prefix);
    if let Some(flags) = p
        .pointer_mut("/scheduler/flags")
        .and_then(Value::as_array_mut)
    {
        for f in flags {
            let oci_spec_name = match f.as_str() {
                Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
                Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
                _ => continue,
            };
            *f = Value::from(oci_spec_name);
        }
    }
    if let Some(aff) = p.get_mut("execCPUAffinity").and_then(Value::as_object_mut) {
        aff.retain(|_, v| v.as_str() != Some(""));
    }
}

/// Drop `r.pids` if the `pids` object at JSON `pointer` in `data` has no
/// `limit`. oci-spec reads an absent limit as 0, and 0 is a real limit in
/// runtime-spec 1.3 (limit is OPTIONAL; unset means "leave pids.max
/// alone"). The JSON is looked at only when oci-spec read 0, so the normal
/// path never parses twice.
pub fn drop_absent_pids_limit(r: &mut LinuxResources, data: &[u8], pointer: &str) {
    if r.pids().is_some_and(|p| p.limit() == 0) && pids_limit_absent(data, pointer) {
        r.set_pids(None);
    }
}

/// Whether the `pids` object at JSON `pointer` in `data` lacks a `limit`.
fn pids_limit_absent(data: &[u8], pointer: &str) -> bool {
    serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.pointer(pointer).map(|p| p.get("limit").is_none()))
        .unwrap_or(false)
}

/// Remove the capability names oci-spec cannot parse, warning about each.
fn drop_unknown_caps(p: &mut Value, prefix: &str) {
    let Some(caps) = p.get_mut("capabilities").and_then(Value::as_object_mut) else {
        return;
    };
    for (set, names) in caps.iter_mut() {
        let Some(names) = names.as_array_mut() else {
            continue;
        };
        let mut i = 0;
        names.retain(|name| {
            // Only names are dropped: a number or an object stays, so the
            // parse fails naming its field (as runc's does).
            let known = !name.is_string()
                || serde_json::from_value::<Capability>(name.clone()).is_ok();
            if !known {
                eprintln!(
                    "capsa: warning: {prefix}capabilities.{set}[{i}]: ignoring unknown or unavailable capabilities: [{}]",
                    name.as_str().unwrap_or_default()
                );
            }
            i += 1;
            known
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSchedulerFlag, Process};

    #[test]
    fn spec_spellings_are_accepted() {
        let p: Process = from_slice(
            br#"{"cwd": "/", "user": {"uid": 0, "gid": 0},
                "scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2,
                  "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]},
                "execCPUAffinity": {"initial": "", "final": "0"}}"#,
        )
        .expect("spec spellings");
        let flags = p.scheduler().as_ref().and_then(|s| s.flags().clone());
        assert_eq!(
            flags,
            Some(vec![
                LinuxSchedulerFlag::SchedResetOnFork,
                LinuxSchedulerFlag::SchedFlagDLOverrun,
                LinuxSchedulerFlag::SchedFlagReclaim
            ])
        );
        let aff = p.exec_cpu_affinity().clone().expect("affinity");
        assert_eq!(aff.initial(), &None);
        assert_eq!(aff.cpu_affinity_final().as_deref(), Some("0"));
    }

    #[test]
    fn unknown_capabilities_are_dropped() {
        let p: Process = from_slice(
            br#"{"cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL", "CAP_NOPE", "CAP_CHOWN"],
                  "effective": ["CAP_ALSO_NOPE"]}}"#,
        )
        .expect("unknown names dropped");
        let caps = p.capabilities().clone().expect("capabilities");
        let bounding = caps.bounding().clone().unwrap_or_default();
        assert_eq!(bounding.len(), 2);
        assert!(bounding.contains(&Capability::Kill) && bounding.contains(&Capability::Chown));
        assert_eq!(caps.effective().as_ref().map(|s| s.len()), Some(0));
        // In a whole config, under "process".
        let spec: oci_spec::runtime::Spec = from_slice(
            br#"{"ociVersion": "1.3.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"permitted": ["CAP_NOPE", "CAP_KILL"]}}}"#,
        )
        .expect("config with an unknown capability");
        let permitted = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().clone())
            .and_then(|c| c.permitted().clone())
            .unwrap_or_default();
        assert_eq!(
            permitted.into_iter().collect::<Vec<_>>(),
            [Capability::Kill]
        );
    }

    #[test]
    fn capabilities_that_are_not_strings_are_refused() {
        let e = from_slice::<oci_spec::runtime::Spec>(
            br#"{"ociVersion": "1.3.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL", 5]}}}"#,
        )
        .err()
        .map(|e| e.path().to_string());
        assert_eq!(e.as_deref(), Some("process.capabilities.bounding[1]"));
    }

    #[test]
    fn pids_without_limit() {
        let doc = br#"{"linux": {"resources": {"pids": {}}}, "pids": {"limit": 0}}"#;
        assert!(pids_limit_absent(doc, "/linux/resources/pids"));
        assert!(!pids_limit_absent(doc, "/pids"));
        assert!(!pids_limit_absent(doc, "/nothing/here"));
    }

    #[test]
    fn other_errors_keep_their_path() {
        let e = from_slice::<Process>(
            br#"{"cwd": "/", "user": {"uid": 0, "gid": 0},
                "scheduler": {"policy": "SCHED_NOPE"}}"#,
        )
        .err()
        .map(|e| e.path().to_string());
        assert_eq!(e.as_deref(), Some("scheduler.policy"));
    }
}

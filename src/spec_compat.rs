//! Parsing config.json (and `exec --process` JSON) into oci-spec types, with
//! the runtime-spec spellings oci-spec 0.10 refuses put right first:
//!
//! - process.scheduler.flags: the spec's `SCHED_FLAG_RESET_ON_FORK` and
//!   `SCHED_FLAG_DL_OVERRUN` are `SCHED_RESET_ON_FORK` and
//!   `SCHED_FLAG_D_L_OVERRUN` to oci-spec's serde names;
//! - process.execCPUAffinity: an empty `initial` or `final` means "not set"
//!   (config.md), but oci-spec's pattern rejects "".
//!
//! The rewrite happens only after a first parse failed at one of those
//! fields, so a config that does not use them costs nothing more.

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
    if !path.contains("scheduler") && !path.contains("execCPUAffinity") {
        return Err(err);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return Err(err);
    };
    if let Some(p) = v.get_mut("process") {
        fix_process(p);
    }
    // `exec --process`: the document is a process.
    fix_process(&mut v);
    serde_path_to_error::deserialize(v)
}

fn fix_process(p: &mut Value) {
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

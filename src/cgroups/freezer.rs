//! Freezing a container (pause/resume): the v1 freezer controller, or the
//! core cgroup.freeze file on v2 (Linux 5.2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Cgroup, CgroupError, Controller, Leaf, write_file};
use crate::sys::{Ctx, SysError};

/// How long to wait for a freeze to complete. Tasks in uninterruptible
/// sleep can delay it; runc gives up similarly rather than hang.
const FREEZE_WAIT: Duration = Duration::from_secs(5);

/// The file to read and write, and the words for frozen/thawed in it.
fn target(cg: &Cgroup) -> Result<(PathBuf, &'static [u8], &'static [u8]), CgroupError> {
    match cg.locate(Controller::Freezer) {
        Ok(Leaf::V1 { dir, .. }) => Ok((dir.join("freezer.state"), b"FROZEN", b"THAWED")),
        Ok(Leaf::V2(dir)) => Ok((dir.join("cgroup.freeze"), b"1", b"0")),
        Err(msg) => Err(CgroupError::Resource {
            field: "(freezer)".into(),
            msg: format!("cannot pause or resume: {msg}"),
        }),
    }
}

/// Is the container's cgroup frozen (or being frozen)? False when it has no
/// freezer or its cgroup is gone: such a container cannot be paused.
pub fn is_frozen(cg: &Cgroup) -> bool {
    let Ok((file, frozen, _)) = target(cg) else {
        return false;
    };
    match std::fs::read(&file) {
        // v1 "FREEZING" counts as paused too: the request was made.
        Ok(s) => {
            let s = s.trim_ascii();
            s == frozen || s == b"FREEZING"
        }
        Err(_) => false,
    }
}

/// Freeze every process of the container and wait until the kernel says
/// all of them are frozen. On timeout the cgroup is thawed again.
pub fn freeze(cg: &Cgroup) -> Result<(), CgroupError> {
    let (file, frozen, thawed) = target(cg)?;
    write_file(&file, frozen)?;
    let done = |f: &Path| -> Result<bool, CgroupError> {
        if frozen == b"1" {
            // v2: cgroup.events says "frozen 1" once every task stopped.
            let ev = f.with_file_name("cgroup.events");
            let text = std::fs::read_to_string(&ev).ctx_at("read", &ev)?;
            Ok(text.lines().any(|l| l.trim() == "frozen 1"))
        } else {
            let s = std::fs::read(f).ctx_at("read", f)?;
            Ok(s.trim_ascii() == frozen)
        }
    };
    let deadline = Instant::now() + FREEZE_WAIT;
    let mut delay = Duration::from_micros(100);
    loop {
        if done(&file)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            let state = std::fs::read_to_string(&file).unwrap_or_default();
            let _ = write_file(&file, thawed);
            return Err(CgroupError::Freeze {
                dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
                state: state.trim().to_owned(),
                secs: FREEZE_WAIT.as_secs(),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// Thaw the container.
pub fn thaw(cg: &Cgroup) -> Result<(), CgroupError> {
    let (file, _, thawed) = target(cg)?;
    write_file(&file, thawed).map_err(|e: SysError| e.into())
}

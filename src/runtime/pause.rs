//! `pause` and `resume`: freeze and thaw every process of the container
//! (v1 freezer or v2 cgroup.freeze). Status rules and error texts as runc
//! 1.1: a created or running container can be paused, only a paused one
//! resumed.

use super::Runtime;
use crate::cgroups::freezer;
use crate::error::{Error, Result};
use crate::state::{ContainerDir, Status};

impl Runtime {
    pub fn pause(&self, id: &str) -> Result<()> {
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        match st.status(&dir.path) {
            Status::Created | Status::Running => {}
            _ => return Err(Error::NotRunning("container not running".into())),
        }
        super::nocgroup::refuse_without_cgroup(&st, "pause")?;
        freezer::freeze(&st.cgroup)?;
        Ok(())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        super::nocgroup::refuse_without_cgroup(&st, "resume")?;
        if st.status(&dir.path) != Status::Paused {
            return Err(Error::WrongState("container not paused".into()));
        }
        freezer::thaw(&st.cgroup)?;
        Ok(())
    }
}

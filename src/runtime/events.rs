//! `events`: runc's event stream: {"type":"stats","id":..,"data":{..}}
//! every interval and {"type":"oom","id":..} when the container's memory
//! cgroup hits OOM, one JSON object a line, until the init exits; with
//! `--stats`, one stats event and exit.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::Runtime;
use crate::cgroups::stats::{OomWatch, Stats};
use crate::error::{Error, Result};
use crate::state::{ContainerDir, State, Status};
use crate::sys::{self, SysError};

/// One event of a container, as runc's `events` prints it: statistics of
/// its cgroup, or an out-of-memory kill in it.
#[derive(Debug, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    kind: EventKind,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Stats>,
}

/// What an [`Event`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EventKind {
    /// Resource statistics of the container's cgroup (memory, CPU, pids,
    /// block I/O, hugetlb, ...), taken now.
    Stats,
    /// The kernel's OOM killer killed a process in the container's cgroup.
    Oom,
}

impl Event {
    /// Stats or OOM.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event as one line of runc's JSON stream (without the newline):
    /// `{"type":"stats","id":"c1","data":{"cpu":{...},"memory":{...}}}` or
    /// `{"type":"oom","id":"c1"}`. The `data` object has runc's field names
    /// (what containerd decodes).
    pub fn to_json(&self) -> String {
        // A struct of numbers, strings and maps with string keys: cannot
        // fail to encode.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The statistics of a stats event, as JSON (runc's field names).
    pub fn stats(&self) -> Option<serde_json::Value> {
        self.data
            .as_ref()
            .and_then(|d| serde_json::to_value(d).ok())
    }
}

/// A Go duration as runc's --interval takes it: "5s", "100ms", "1m30s",
/// "1.5s" (units h, m, s, ms, us, µs, ns). Must be positive.
pub fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[u_end..];
    }
    if total <= 0.0 || !total.is_finite() {
        return Err(format!("duration must be greater than 0: {s:?}"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// The events of one container, in order, until its init exits (or, with
/// `stats_only`, one stats event). An iterator: each `next` blocks until
/// the next event is due.
pub struct Events {
    st: State,
    interval: Duration,
    /// None once the stream has ended.
    pidfd: Option<OwnedFd>,
    oom: Option<OomWatch>,
    next: Instant,
    /// OOM events counted but not yet handed out.
    ooms_due: u64,
    /// The init has exited: hand out what is due, then end.
    exited: bool,
    /// `--stats`: the one stats event is still to come.
    stats_only: bool,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("id", &self.st.id)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// `events`: the container's event stream (see [`Events`]).
    pub fn events(&self, id: &str, stats_only: bool, interval: Duration) -> Result<Events> {
        let (st, status) = {
            let dir = ContainerDir::open(&self.root, id)?;
            let st = dir.load()?;
            let status = st.status(&dir.path);
            (st, status)
            // The lock is released here: others work on the container
            // while the stream runs.
        };
        if status == Status::Stopped {
            return Err(Error::NotRunning(format!(
                "container with id {id} is not running"
            )));
        }
        // Stats and OOM events come from the cgroup: none, no numbers
        // (zeros would read as an idle container).
        super::nocgroup::refuse_without_cgroup(&st, "report events of")?;
        let mut ev = Events {
            st,
            interval,
            pidfd: None,
            oom: None,
            next: Instant::now(),
            ooms_due: 0,
            exited: false,
            stats_only,
        };
        if stats_only {
            return Ok(ev);
        }
        ev.pidfd = match sys::pidfd_open(ev.st.pid) {
            Ok(fd) => Some(fd),
            Err(e) if e.errno == Errno::ESRCH => None,
            Err(e) => return Err(e.into()),
        };
        if !ev.st.init_alive() {
            ev.pidfd = None;
        }
        // No memory controller: stats only, no OOM events.
        ev.oom = OomWatch::new(&ev.st.cgroup).ok();
        Ok(ev)
    }
}

impl Events {
    fn event(&self, kind: EventKind, data: Option<Stats>) -> Event {
        Event {
            kind,
            id: self.st.id.clone(),
            data,
        }
    }

    fn stats(&self) -> Event {
        self.event(EventKind::Stats, Some(self.st.cgroup.stats()))
    }

    /// Wait for whatever comes first: the next stats time, an OOM kill,
    /// the init's exit.
    fn wait(&mut self) -> Result<()> {
        let Some(pidfd) = &self.pidfd else {
            return Ok(());
        };
        let wait = self.next.saturating_duration_since(Instant::now());
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if let Some(w) = &self.oom {
            fds.push(PollFd::new(w.fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SysError::new("poll", e).into()),
        }
        let exited = fds[0].revents().is_some_and(|r| !r.is_empty());
        let oom_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        drop(fds);
        // An OOM kill of the init itself is reported before the end.
        if (oom_ready || exited)
            && let Some(w) = &mut self.oom
        {
            self.ooms_due += w.take();
        }
        self.exited = exited;
        Ok(())
    }
}

impl Iterator for Events {
    type Item = crate::api::Result<Event>;

    fn next(&mut self) -> Option<crate::api::Result<Event>> {
        if self.stats_only {
            self.stats_only = false;
            self.pidfd = None;
            return Some(Ok(self.stats()));
        }
        loop {
            if self.ooms_due > 0 {
                self.ooms_due -= 1;
                return Some(Ok(self.event(EventKind::Oom, None)));
            }
            if self.exited {
                self.pidfd = None;
            }
            self.pidfd.as_ref()?;
            let now = Instant::now();
            if now >= self.next {
                self.next = now + self.interval;
                return Some(Ok(self.stats()));
            }
            if let Err(e) = self.wait() {
                self.pidfd = None;
                return Some(Err(crate::api::Error::from_internal(e, &self.st.id)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let ok = [
            ("5s", 5_000),
            ("100ms", 100),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("2h", 7_200_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_interval(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "5", "s", "0s", "-1s", "5x", "1.2.3s"] {
            assert!(parse_interval(s).is_err(), "{s}");
        }
    }
}

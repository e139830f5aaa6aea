//! `events`: runc's event stream: {"type":"stats","id":..,"data":{..}}
//! every interval and {"type":"oom","id":..} when the container's memory
//! cgroup hits OOM, one JSON object a line, until the init exits; with
//! `--stats`, one stats event and exit.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::Runtime;
use crate::cgroups::stats::{OomWatch, Stats};
use crate::error::{Error, Result};
use crate::state::{ContainerDir, Status};
use crate::sys::{self, SysError};

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Stats>,
}

fn emit(out: &mut dyn Write, e: &Event<'_>) -> Result<()> {
    let line =
        serde_json::to_string(e).map_err(|e| Error::Lifecycle(format!("encoding event: {e}")))?;
    // A closed reader (engine gone) ends the stream: report it, runc does too.
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| SysError::io("write", "stdout", &e).into())
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

impl Runtime {
    pub fn events(
        &self,
        id: &str,
        stats_only: bool,
        interval: Duration,
        out: &mut dyn Write,
    ) -> Result<()> {
        let (st, status) = {
            let dir = ContainerDir::open(&self.root, id)?;
            let st = dir.load()?;
            let status = st.status(&dir.path);
            (st, status)
            // The lock is released here: others work on the container
            // while the stream runs.
        };
        if status == Status::Stopped {
            return Err(Error::Lifecycle(format!(
                "container with id {id} is not running"
            )));
        }
        // Stats and OOM events come from the cgroup: none, no numbers
        // (zeros would read as an idle container).
        super::nocgroup::refuse_without_cgroup(&st, "report events of")?;
        if stats_only {
            let s = st.cgroup.stats();
            return emit(
                out,
                &Event {
                    typ: "stats",
                    id,
                    data: Some(&s),
                },
            );
        }
        let pidfd = match sys::pidfd_open(st.pid) {
            Ok(fd) => fd,
            Err(e) if e.errno == Errno::ESRCH => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !st.init_alive() {
            return Ok(());
        }
        // No memory controller: stats only, no OOM events.
        let mut oom = OomWatch::new(&st.cgroup).ok();
        let mut next = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next {
                let s = st.cgroup.stats();
                emit(
                    out,
                    &Event {
                        typ: "stats",
                        id,
                        data: Some(&s),
                    },
                )?;
                next = now + interval;
            }
            let wait = next.saturating_duration_since(Instant::now());
            let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            if let Some(w) = &oom {
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
            if oom_ready && let Some(w) = &mut oom {
                for _ in 0..w.take() {
                    emit(
                        out,
                        &Event {
                            typ: "oom",
                            id,
                            data: None,
                        },
                    )?;
                }
            }
            if exited {
                // An OOM kill of the init itself is reported before the end.
                if let Some(w) = &mut oom {
                    for _ in 0..w.take() {
                        emit(
                            out,
                            &Event {
                                typ: "oom",
                                id,
                                data: None,
                            },
                        )?;
                    }
                }
                return Ok(());
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

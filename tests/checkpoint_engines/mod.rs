//! Issue 15's engine checks, in the same VM boot as the rest of
//! tests/checkpoint.rs (kernel 6.1, CRIU 3.17); containerd's in
//! containerd.rs. Here podman 4.3 (through conmon)
//! checkpoints and restores a counter container with the runtime under test
//! and with runc, side by side, each given by path (`--runtime PATH`).
//! podman's storage, run root, tmp dir and events log are private to the
//! test (tests/engines/mod.rs's Scratch, on the guest's tmpfs, not the 9p
//! share); the image is imported from a local busybox tar. Under TCG each
//! podman call takes seconds: the cases are only what issue 15 asks for.

use std::time::{Duration, Instant};

// containerd's (ctr) checkpoint/restore.
mod containerd;

use crate::common::{self, Output};
use crate::engines::{self, Scratch, s};

const IMAGE: &str = "localhost/capsa-ckpt/busybox:1";
/// The counter: "RUN N" in /tmp/c (the container's overlay), N one more every
/// 0.1 s; RUN is random per start of the shell, so a container that was
/// started afresh instead of restored shows a new RUN.
const COUNTER: &str =
    "r=$RANDOM$RANDOM; i=0; while true; do i=$((i+1)); echo $r $i > /tmp/c; sleep 0.1; done";

struct Podman {
    scratch: Scratch,
    podman: std::path::PathBuf,
    global: Vec<String>,
}

impl Podman {
    fn start() -> Result<Podman, String> {
        let scratch = Scratch::new("ckpt-podman");
        let d = |n: &str| s(&scratch.mkdir(n));
        let (root, runroot, tmp) = (d("root"), d("runroot"), d("tmp"));
        // podman never passes --root: a wrapper keeps capsa's state private.
        scratch.mkdir("bin");
        scratch.script(
            "bin/capsa",
            &format!(
                "exec {} --root {} \"$@\"",
                s(&engines::runtime_copy(&scratch)),
                d("capsa-root")
            ),
        );
        scratch.write_file(
            "containers.conf",
            &format!(
                "[containers]\nnetns = \"none\"\n\
                 default_ulimits = [\"nofile=20000:20000\"]\n\
                 [engine]\nruntime_supports_json = [\"crun\", \"runc\", \"capsa\"]\n\
                 cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{}\"\ntmp_dir = \"{tmp}\"\nvolume_path = \"{}\"\n\
                 static_dir = \"{}\"\n[network]\nnetwork_config_dir = \"{}\"\n",
                s(&scratch.path("events.log")),
                d("volumes"),
                d("static"),
                d("net"),
            ),
        );
        let (podman, global) = engines::private_podman(&scratch, &root, &runroot, &tmp)?;
        let p = Podman {
            scratch,
            podman,
            global,
        };
        let tar = p.scratch.busybox_tar();
        let o = p.cli(&["import", "--change", "ENV PATH=/bin", &s(&tar), IMAGE]);
        if !o.success() {
            return Err(format!("podman import: {o}"));
        }
        Ok(p)
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = self.global.iter().map(String::as_str).collect();
        full.extend_from_slice(args);
        let conf = self.scratch.path("containers.conf");
        let storage = self.scratch.path("storage.conf");
        self.scratch.run(&self.podman, &full, |c| {
            c.env("CONTAINERS_CONF", &conf);
            c.env("CONTAINERS_STORAGE_CONF", &storage);
        })
    }

    /// The counter (run, value), read with `podman exec`.
    fn count(&self, name: &str) -> Result<(String, u64), String> {
        let o = self.cli(&["exec", name, "cat", "/tmp/c"]);
        let mut words = o.stdout.split_whitespace();
        match (words.next(), words.next().and_then(|n| n.parse().ok())) {
            (Some(run), Some(n)) => Ok((run.to_owned(), n)),
            _ => Err(format!("read the counter of {name}: {o}")),
        }
    }

    /// Wait until the counter of run `run` (any run if None) has passed
    /// `min`; its (run, value). A counter of another run is an error: the
    /// shell was started again, not restored.
    fn count_above(
        &self,
        name: &str,
        run: Option<&str>,
        min: u64,
    ) -> Result<(String, u64), String> {
        let start = Instant::now();
        loop {
            let (r, n) = self.count(name)?;
            if run.is_some_and(|want| want != r) {
                return Err(format!(
                    "{name} counts from {n} in a new run {r} (was {run:?} at {min}): started afresh, not restored"
                ));
            }
            if n > min {
                return Ok((r, n));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("{name}'s counter stays at {n} (<= {min})"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn must(&self, what: &str, args: &[&str]) -> Result<(), String> {
        let o = self.cli(args);
        if o.success() {
            Ok(())
        } else {
            Err(format!("{what}: {o}"))
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(&["rm", "-af", "-t", "0"]);
        self.scratch.sweep();
    }
}

/// Case 1: checkpoint, then restore the same container: it counts on from
/// where it was (the value read before the checkpoint is passed).
fn checkpoint_restore(p: &Podman, rt: &str, tag: &str) -> Result<(), String> {
    let name = format!("count-{tag}");
    p.must(
        "podman run",
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            COUNTER,
        ],
    )?;
    let (run, before) = p.count_above(&name, None, 10)?;
    p.must("checkpoint", &["container", "checkpoint", &name])?;
    let state = p.cli(&["inspect", "-f", "{{.State.Status}}", &name]);
    if state.stdout.trim() != "exited" {
        return Err(format!("after checkpoint: {state}"));
    }
    p.must("restore", &["container", "restore", &name])?;
    let (_, after) = p.count_above(&name, Some(&run), before)?;
    eprintln!("podman/{tag}: counter {before} before checkpoint, {after} after restore");
    Ok(())
}

/// Case 2: `checkpoint --export`, remove the container, `restore --import`
/// as a fresh container with a new name: a migration.
fn export_import(p: &Podman, tag: &str) -> Result<(), String> {
    let name = format!("count-{tag}");
    let archive = s(&p.scratch.path(&format!("{tag}.tar.gz")));
    let (run, before) = p.count(&name)?;
    p.must(
        "checkpoint --export",
        &[
            "container",
            "checkpoint",
            &format!("--export={archive}"),
            &name,
        ],
    )?;
    p.must("rm", &["rm", "-f", "-t", "0", &name])?;
    let moved = format!("moved-{tag}");
    p.must(
        "restore --import",
        &[
            "container",
            "restore",
            &format!("--import={archive}"),
            "--name",
            &moved,
        ],
    )?;
    let (_, after) = p.count_above(&moved, Some(&run), before)?;
    eprintln!("podman/{tag}: counter {before} before export, {after} after import");
    p.must("rm", &["rm", "-f", "-t", "0", &moved])
}

#[test]
fn podman_checkpoint_restore_and_export_import_on_capsa_and_runc() {
    if !crate::need_criu() {
        return;
    }
    for prog in ["podman", "conmon"] {
        if engines::which(prog).is_none() {
            common::skip(&format!(
                "`{prog}` is not installed (apt-get install {prog})"
            ));
            return;
        }
    }
    let t0 = Instant::now();
    let p = Podman::start().unwrap_or_else(|e| panic!("podman set-up: {e}"));
    let capsa = s(&p.scratch.path("bin/capsa"));
    let mut table = Vec::new();
    for (tag, rt) in [("capsa", capsa.as_str()), ("runc", "/usr/sbin/runc")] {
        let one = checkpoint_restore(&p, rt, tag);
        // The migration starts from case 1's restored container.
        let two = match &one {
            Ok(()) => export_import(&p, tag),
            Err(_) => Err("not run (case 1 failed)".into()),
        };
        table.push((tag, "checkpoint + restore", one));
        table.push((tag, "checkpoint --export + restore --import", two));
    }
    let mut report = String::new();
    for (tag, case, res) in &table {
        let verdict = match res {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        report.push_str(&format!("  podman {case} on {tag}: {verdict}\n"));
    }
    eprintln!("{report}  ({:.0?} in all)", t0.elapsed());
    assert!(table.iter().all(|(_, _, r)| r.is_ok()), "\n{report}");
}

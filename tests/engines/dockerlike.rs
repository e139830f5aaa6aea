//! Docker and podman share a command line: the user actions both cover are
//! written once here, generic over the engine, and listed by both
//! tests/engine_docker.rs and tests/engine_podman.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Engine, Scratch, s};
use crate::common::{self, Output};

/// What a docker-compatible engine's tests need from it.
pub trait DockerLike: Engine {
    /// The comm of the init that `run --init` puts at pid 1.
    const INIT_COMM: &'static str;
    /// `rm` that kills at once (podman's rm -f first waits for the stop
    /// timeout; Docker's has no -t).
    const RM_FORCE: &'static [&'static str];
    /// The CLI with `args` (global flags and environment added by the engine).
    fn cli_with(&self, args: &[&str], stdin: Option<&str>) -> Output;
    /// Flags every `run` gets: runtime, network, cgroup parent.
    fn run_flags(&self) -> Vec<String>;
    fn image(&self) -> &str;
    fn scratch(&self) -> &Scratch;
    /// The runtime's `--root` for this engine's containers.
    fn runtime_root(&self) -> PathBuf;

    fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, None)
    }

    /// `run --rm FLAGS OPTS IMAGE CMD...`
    fn run_rm(&self, opts: &[&str], cmd: &[&str]) -> Output {
        self.run_rm_stdin(opts, cmd, None)
    }

    fn run_rm_stdin(&self, opts: &[&str], cmd: &[&str], stdin: Option<&str>) -> Output {
        let flags = self.run_flags();
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(opts);
        args.push(self.image());
        args.extend_from_slice(cmd);
        self.cli_with(&args, stdin)
    }

    /// `sh -c script` in a --rm container; panics unless it exits 0.
    #[track_caller]
    fn sh_ok(&self, opts: &[&str], script: &str) -> String {
        let o = self.run_rm(opts, &["sh", "-c", script]);
        o.ok();
        o.stdout
    }

    /// A detached container named `name` running `cmd`; returns its id.
    #[track_caller]
    fn detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let _ = self.cli(&[Self::RM_FORCE, &[name]].concat());
        let flags = self.run_flags();
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(opts);
        args.push(self.image());
        args.extend_from_slice(cmd);
        let o = self.cli(&args);
        o.ok();
        o.stdout.trim().to_owned()
    }

    #[track_caller]
    fn inspect(&self, name: &str, format: &str) -> String {
        let o = self.cli(&["inspect", "-f", format, name]);
        o.ok();
        o.stdout.trim().to_owned()
    }

    /// `rm -f`, then check that the runtime kept nothing: no state, and the
    /// workload's process is gone.
    #[track_caller]
    fn remove(&self, name: &str, id: &str) {
        let pid = self.inspect(name, "{{.State.Pid}}");
        self.cli(&[Self::RM_FORCE, &[name]].concat()).ok();
        assert!(
            !self.runtime_root().join(id).exists(),
            "the runtime's state of {id} survived rm -f"
        );
        if pid != "0" {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "the workload (pid {pid}) survived rm -f"
            );
        }
    }
}

pub fn run_rm_output_and_exit_codes<E: DockerLike>(e: &E) {
    let o = e.run_rm(&[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.code, Some(3), "{o}");
    assert_eq!(o.stdout, "out\n", "{o}");
    assert!(o.stderr.contains("err"), "{o}");
    assert_eq!(e.run_rm(&[], &["true"]).code, Some(0));
    // Nothing but stdio reaches the workload (containerd's shim leaks a
    // socket as fd 3 into create). sh stays pid 1: `ls` as pid 1 would
    // list its own directory fd.
    let fds = e.sh_ok(&[], "ls /proc/1/fd; true");
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds}"
    );
}

pub fn run_interactive<E: DockerLike>(e: &E) {
    let script = "read l; echo got:$l; cat";
    let o = e.run_rm_stdin(&["-i"], &["sh", "-c", script], Some("first\nsecond\n"));
    o.ok();
    assert_eq!(o.stdout, "got:first\nsecond\n", "{o}");
}

pub fn run_tty<E: DockerLike>(e: &E) {
    let out = e.sh_ok(&["-t"], "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys");
    assert!(
        out.contains("/dev/pts/") && out.contains("both-ttys"),
        "{out:?}"
    );
}

pub fn exec_flags<E: DockerLike>(e: &E) {
    let id = e.detached("exec", &[], &["sleep", "1000"]);
    let o = e.cli(&["exec", "exec", "sh", "-c", "echo in; exit 7"]);
    assert_eq!((o.code, o.stdout.as_str()), (Some(7), "in\n"), "{o}");
    let o = e.cli(&["exec", "-t", "exec", "tty"]);
    o.ok();
    assert!(o.stdout.contains("/dev/pts/"), "{o}");
    let script = "echo $(id -u):$(id -g):$FOO:$(pwd)";
    let o = e.cli(&[
        "exec",
        "-u",
        "1000:1000",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "exec",
        "sh",
        "-c",
        script,
    ]);
    o.ok();
    assert_eq!(o.stdout, "1000:1000:bar:/tmp\n", "{o}");
    e.cli(&[
        "exec",
        "-d",
        "exec",
        "sh",
        "-c",
        "echo detached > /tmp/marker",
    ])
    .ok();
    super::wait_until("exec -d's file", Duration::from_secs(20), || {
        let o = e.cli(&["exec", "exec", "cat", "/tmp/marker"]);
        (o.stdout == "detached\n").then_some(())
    });
    // An exec'd process is in the container's pid namespace and cgroup.
    let script = "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup";
    let o = e.cli(&["exec", "exec", "sh", "-c", script]);
    o.ok();
    assert!(o.stdout.starts_with("sleep 1000"), "{o}");
    assert!(
        o.stdout.contains(&id),
        "exec outside the container's cgroup: {o}"
    );
    e.remove("exec", &id);
}

pub fn kill_signal<E: DockerLike>(e: &E) {
    let script = "trap 'echo usr1 > /tmp/got' USR1; while :; do sleep 0.1; done";
    let id = e.detached("kill", &[], &["sh", "-c", script]);
    e.cli(&["kill", "-s", "USR1", "kill"]).ok();
    super::wait_until("the USR1 trap", Duration::from_secs(20), || {
        let o = e.cli(&["exec", "kill", "cat", "/tmp/got"]);
        (o.stdout == "usr1\n").then_some(())
    });
    e.cli(&["kill", "-s", "KILL", "kill"]).ok();
    super::wait_until("the container to stop", Duration::from_secs(20), || {
        (e.inspect("kill", "{{.State.Running}}") == "false").then_some(())
    });
    assert_eq!(e.inspect("kill", "{{.State.ExitCode}}"), "137");
    e.remove("kill", &id);
}

pub fn pause_unpause<E: DockerLike>(e: &E) {
    let script = "while :; do date +%s%N > /tmp/t; sleep 0.05; done";
    let id = e.detached("pause", &[], &["sh", "-c", script]);
    e.cli(&["pause", "pause"]).ok();
    assert_eq!(e.inspect("pause", "{{.State.Status}}"), "paused");
    let st = super::runtime_state(e.scratch(), &e.runtime_root(), &id);
    assert_eq!(st["status"], "paused", "{st}");
    let o = e.cli(&["exec", "pause", "true"]);
    assert!(!o.success(), "exec into a paused container: {o}");
    e.cli(&["unpause", "pause"]).ok();
    assert_eq!(e.inspect("pause", "{{.State.Status}}"), "running");
    // The loop runs again: its timestamp moves.
    let a = e.cli(&["exec", "pause", "cat", "/tmp/t"]).stdout;
    super::wait_until("the workload to run again", Duration::from_secs(20), || {
        (e.cli(&["exec", "pause", "cat", "/tmp/t"]).stdout != a).then_some(())
    });
    e.remove("pause", &id);
}

pub fn update_memory_and_cpus<E: DockerLike>(e: &E) {
    let id = e.detached("update", &[], &["sleep", "1000"]);
    e.cli(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "update",
    ])
    .ok();
    e.cli(&["update", "--cpus", "0.5", "update"]).ok();
    let mem = super::cg_read("memory/memory.limit_in_bytes", "memory.max");
    let cpu = super::cg_read("cpu/cpu.cfs_quota_us", "cpu.max");
    let o = e.cli(&["exec", "update", "sh", "-c", &format!("{mem}; {cpu}")]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(super::parse_limit(lines[0]), 64 << 20, "{o}");
    assert!(lines[1].starts_with("50000"), "{o}");
    e.remove("update", &id);
}

pub fn resource_limits<E: DockerLike>(e: &E) {
    let script = [
        super::cg_read("memory/memory.limit_in_bytes", "memory.max"),
        super::cg_read("pids/pids.max", "pids.max"),
        super::cg_read("cpu/cpu.cfs_quota_us", "cpu.max"),
    ]
    .join("; ");
    let opts = ["--memory", "32m", "--pids-limit", "50", "--cpus", "0.25"];
    let out = e.sh_ok(&opts, &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(super::parse_limit(lines[0]), 32 << 20, "{out}");
    assert_eq!(lines[1], "50", "{out}");
    assert!(lines[2].starts_with("25000"), "{out}");
}

pub fn cap_drop_all<E: DockerLike>(e: &E) {
    let out = e.sh_ok(&["--cap-drop", "ALL"], "cat /proc/self/status");
    for key in ["CapPrm", "CapEff", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(super::cap_field(&out, key), 0, "{key}: {out}");
    }
}

pub fn read_only_and_tmpfs<E: DockerLike>(e: &E) {
    let script = "touch /x 2>&1; echo rc=$?; touch /scratch/y && echo tmpfs-ok; \
                  grep ' /scratch ' /proc/mounts";
    let out = e.sh_ok(&["--read-only", "--tmpfs", "/scratch"], script);
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
    assert!(
        out.contains("tmpfs-ok") && out.contains("tmpfs /scratch tmpfs rw"),
        "{out}"
    );
}

pub fn user_and_init<E: DockerLike>(e: &E) {
    let out = e.sh_ok(&["--user", "1000:1000"], "echo $(id -u):$(id -g)");
    assert_eq!(out, "1000:1000\n");
    let out = e.sh_ok(&["--init"], "cat /proc/1/comm; echo $$");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], E::INIT_COMM, "{out}");
    assert_ne!(lines[1], "1", "the workload is pid 1 under --init: {out}");
}

pub fn volumes<E: DockerLike>(e: &E) {
    let dir = e.scratch().mkdir("vol");
    fs::write(dir.join("in"), "from-host\n").expect("write");
    let bind = format!("{}:/vol", s(&dir));
    let ro = format!("{}:/ro:ro", s(&dir));
    let script = "cat /vol/in; echo from-container > /vol/out; touch /ro/x 2>&1 || true";
    let out = e.sh_ok(&["-v", &bind, "-v", &ro], script);
    assert!(out.starts_with("from-host\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let written = fs::read_to_string(dir.join("out")).unwrap_or_default();
    assert_eq!(written, "from-container\n");
}

pub fn rm_force_running<E: DockerLike>(e: &E) {
    let id = e.detached("rmf", &[], &["sleep", "1000"]);
    e.remove("rmf", &id);
    assert!(!e.cli(&["inspect", "rmf"]).success());
}

pub fn missing_and_non_executable<E: DockerLike>(e: &E) {
    let o = e.run_rm(&[], &["no-such-command"]);
    assert_eq!(o.code, Some(127), "{o}");
    assert!(
        o.stderr.contains("executable file not found in $PATH"),
        "{o}"
    );
    let o = e.run_rm(&[], &["/etc/not-executable"]);
    assert_eq!(o.code, Some(126), "{o}");
    assert!(o.stderr.contains("permission denied"), "{o}");
}

/// The tests above, by name, for an engine's list.
/// `--device`: the engine lists the device in linux.devices and allows it
/// in linux.resources.devices; the node is there and opens. A device node
/// made in the container without `--device` is denied by the cgroup.
pub fn device<E: DockerLike>(e: &E) {
    if !Path::new("/dev/fuse").exists() {
        common::skip("no /dev/fuse on this host");
        return;
    }
    let out = e.sh_ok(
        &["--device", "/dev/fuse:/dev/capsa-fuse"],
        "stat -c '%F %t:%T' /dev/capsa-fuse; exec 3<>/dev/capsa-fuse && echo opened",
    );
    assert_eq!(out, "character special file a:e5\nopened\n");
    let out = e.sh_ok(
        &["--cap-add", "MKNOD"],
        "mknod /dev/capsa-fuse c 10 229 && (exec 3<>/dev/capsa-fuse) 2>&1; true",
    );
    assert!(out.contains("Operation not permitted"), "{out}");
}

pub fn shared<E: DockerLike>() -> Vec<super::Test<E>> {
    vec![
        (
            "run_rm_output_and_exit_codes",
            run_rm_output_and_exit_codes::<E>,
        ),
        ("run_interactive", run_interactive::<E>),
        ("run_tty", run_tty::<E>),
        ("exec_flags", exec_flags::<E>),
        ("kill_signal", kill_signal::<E>),
        ("pause_unpause", pause_unpause::<E>),
        ("update_memory_and_cpus", update_memory_and_cpus::<E>),
        ("resource_limits", resource_limits::<E>),
        ("cap_drop_all", cap_drop_all::<E>),
        ("device", device::<E>),
        ("read_only_and_tmpfs", read_only_and_tmpfs::<E>),
        ("user_and_init", user_and_init::<E>),
        ("volumes", volumes::<E>),
        ("rm_force_running", rm_force_running::<E>),
        (
            "missing_and_non_executable",
            missing_and_non_executable::<E>,
        ),
    ]
}

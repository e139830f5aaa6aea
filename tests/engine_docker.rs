//! Docker 20.10 (Debian's docker.io) runs its containers on the runtime under
//! test, configured only through daemon.json's `runtimes`: a private dockerd
//! (own data-root, exec-root, pidfile, socket, cgroup parent; no iptables, no
//! bridge) drives it through its own containerd and containerd-shim-runc-v2,
//! so these are also the calls containerd makes. Each test asserts what the
//! workload observes. See tests/engines/mod.rs for the harness.

mod common;
mod engines;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use common::Output;
use engines::{Daemon, Engine, Scratch, Test, s};

const IMAGE: &str = "capsa-test/busybox:1";

struct Docker {
    scratch: Scratch,
    daemon: Daemon,
    cli: PathBuf,
    host: String,
    exec_root: PathBuf,
}

impl Engine for Docker {
    const NAME: &'static str = "docker";
    const NEEDS: &'static [(&'static str, &'static str)] = &[
        ("dockerd", "docker.io"),
        ("docker", "docker.io"),
        ("containerd", "containerd"),
    ];

    fn start() -> Result<Docker, String> {
        let scratch = Scratch::new("docker");
        let data = scratch.mkdir("data");
        let exec_root = scratch.mkdir("exec");
        scratch.mkdir("cli-config");
        let config = serde_json::json!({
            "iptables": false,
            "ip-forward": false,
            "ip-masq": false,
            "bridge": "none",
            "cgroup-parent": scratch.cgroup_parent,
            "runtimes": {"capsa": {"path": s(&common::runtime())}},
            // This host caps RLIMIT_NOFILE at 20000 and lacks CAP_SYS_RESOURCE.
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000}},
            "log-level": "info",
        });
        let config_path = scratch.write_file("daemon.json", &config.to_string());
        let host = format!("unix://{}", s(&scratch.path("docker.sock")));
        let dockerd = engines::which("dockerd").ok_or("no dockerd")?;
        let mut daemon = Daemon::spawn(
            "dockerd",
            &dockerd,
            &[
                "--config-file",
                &s(&config_path),
                "--data-root",
                &s(&data),
                "--exec-root",
                &s(&exec_root),
                "--pidfile",
                &s(&scratch.path("docker.pid")),
                "-H",
                &host,
            ],
            scratch.path("dockerd.log"),
        );
        // The docker.io CLI (another `docker` may come first on PATH).
        let cli = engines::which("/usr/bin/docker")
            .or_else(|| engines::which("docker"))
            .ok_or("no docker CLI")?;
        let ready = daemon.wait_ready(Duration::from_secs(90), || {
            Docker::cli_run(&scratch, &cli, &host, &["version"], None).success()
        });
        if let Err(e) = ready {
            daemon.stop(Duration::from_secs(20));
            scratch.sweep();
            return Err(e);
        }
        let tar = scratch.busybox_tar();
        let docker = Docker {
            scratch,
            daemon,
            cli,
            host,
            exec_root,
        };
        let o = docker.docker(&["import", "--change", "ENV PATH=/bin", &s(&tar), IMAGE]);
        if !o.success() {
            return Err(format!("docker import: {o}"));
        }
        Ok(docker)
    }

    fn diagnostics(&self) -> String {
        self.daemon.tail(40)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in ids.stdout.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        self.daemon.stop(Duration::from_secs(30));
        self.scratch.sweep();
    }
}

impl Docker {
    fn cli_run(
        scratch: &Scratch,
        cli: &Path,
        host: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        let mut full = vec!["-H", host];
        full.extend_from_slice(args);
        let input = stdin.map(|text| scratch.write_file("stdin", text));
        let config = scratch.path("cli-config");
        scratch.run(cli, &full, |c| {
            c.env("DOCKER_CONFIG", &config);
            if let Some(p) = input {
                c.stdin(fs::File::open(p).expect("open stdin file"));
            }
        })
    }

    fn docker(&self, args: &[&str]) -> Output {
        Docker::cli_run(&self.scratch, &self.cli, &self.host, args, None)
    }

    fn docker_stdin(&self, args: &[&str], stdin: &str) -> Output {
        Docker::cli_run(&self.scratch, &self.cli, &self.host, args, Some(stdin))
    }

    /// `docker run --rm --runtime capsa --network none OPTS IMAGE CMD...`
    fn run_rm(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--runtime", "capsa", "--network", "none"];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.docker(&args)
    }

    /// `sh -c script` in a --rm container; panics unless it exits 0.
    #[track_caller]
    fn sh_ok(&self, opts: &[&str], script: &str) -> String {
        let o = self.run_rm(opts, &["sh", "-c", script]);
        o.ok();
        o.stdout
    }

    /// A detached container running `cmd`; returns its full id.
    #[track_caller]
    fn detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let _ = self.docker(&["rm", "-f", name]);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--runtime",
            "capsa",
            "--network",
            "none",
        ];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let o = self.docker(&args);
        o.ok();
        o.stdout.trim().to_owned()
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        let o = self.docker(&["inspect", "-f", format, name]);
        o.ok();
        o.stdout.trim().to_owned()
    }

    /// The state dir Docker gives the runtime (`--root`).
    fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime-runc/moby")
    }

    /// Remove the container and check the runtime kept nothing of it.
    #[track_caller]
    fn remove(&self, name: &str, id: &str) {
        self.docker(&["rm", "-f", name]).ok();
        assert!(
            !self.runtime_root().join(id).exists(),
            "the runtime's state of {id} survived docker rm -f"
        );
        let cg = format!("{}/{id}", self.scratch.cgroup_parent);
        assert!(
            engines::cgroup_procs(&cg).is_empty(),
            "processes left in {cg}"
        );
    }
}

fn run_rm_output_and_exit_codes(d: &Docker) {
    let o = d.run_rm(&[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.code, Some(3), "{o}");
    assert_eq!(o.stdout, "out\n", "{o}");
    assert!(o.stderr.contains("err"), "{o}");
    let o = d.run_rm(&[], &["true"]);
    assert_eq!(o.code, Some(0), "{o}");
    // The stray fd the shim leaks into create must not reach the workload.
    // (sh stays pid 1: `ls` as pid 1 would list its own directory fd.)
    let fds = d.sh_ok(&[], "ls /proc/1/fd; true");
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds}"
    );
}

fn run_interactive(d: &Docker) {
    let o = d.docker_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "--runtime",
            "capsa",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "read l; echo got:$l; cat",
        ],
        "first\nsecond\n",
    );
    o.ok();
    assert_eq!(o.stdout, "got:first\nsecond\n", "{o}");
}

fn run_tty(d: &Docker) {
    let out = d.sh_ok(&["-t"], "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("both-ttys"), "{out:?}");
}

fn exec_flags(d: &Docker) {
    let id = d.detached("exec", &[], &["sleep", "1000"]);
    let o = d.docker(&["exec", "exec", "sh", "-c", "echo in; exit 7"]);
    assert_eq!((o.code, o.stdout.as_str()), (Some(7), "in\n"), "{o}");
    let o = d.docker(&["exec", "-t", "exec", "sh", "-c", "tty"]);
    o.ok();
    assert!(o.stdout.contains("/dev/pts/"), "{o}");
    let o = d.docker(&[
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
        "echo $(id -u):$(id -g):$FOO:$(pwd)",
    ]);
    o.ok();
    assert_eq!(o.stdout, "1000:1000:bar:/tmp\n", "{o}");
    d.docker(&[
        "exec",
        "-d",
        "exec",
        "sh",
        "-c",
        "echo detached > /tmp/marker",
    ])
    .ok();
    engines::wait_until("exec -d's file", Duration::from_secs(20), || {
        let o = d.docker(&["exec", "exec", "cat", "/tmp/marker"]);
        (o.stdout == "detached\n").then_some(())
    });
    // An exec'd process is in the container's pid namespace and cgroup.
    let o = d.docker(&[
        "exec",
        "exec",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup",
    ]);
    o.ok();
    assert!(o.stdout.starts_with("sleep 1000"), "{o}");
    assert!(
        o.stdout.contains(&id),
        "exec outside the container's cgroup: {o}"
    );
    d.remove("exec", &id);
}

fn stop_and_restart(d: &Docker) {
    let script = "trap 'echo term; exit 0' TERM; echo started; while :; do sleep 0.1; done";
    let id = d.detached("stop", &[], &["sh", "-c", script]);
    let pid1 = d.inspect("stop", "{{.State.Pid}}");
    d.docker(&["stop", "-t", "20", "stop"]).ok();
    // The workload got SIGTERM and exited by itself (not 137).
    assert_eq!(d.inspect("stop", "{{.State.ExitCode}}"), "0");
    d.docker(&["restart", "-t", "1", "stop"]).ok();
    assert_eq!(d.inspect("stop", "{{.State.Running}}"), "true");
    let pid2 = d.inspect("stop", "{{.State.Pid}}");
    assert_ne!(pid1, pid2, "restart did not start a new process");
    let st = engines::runtime_state(&d.scratch, &d.runtime_root(), &id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].to_string(), pid2, "{st}");
    let logs = d.docker(&["logs", "stop"]);
    assert!(logs.stdout.contains("term"), "{logs}");
    d.remove("stop", &id);
}

fn kill_signal(d: &Docker) {
    let script = "trap 'echo usr1 > /tmp/got' USR1; while :; do sleep 0.1; done";
    let id = d.detached("kill", &[], &["sh", "-c", script]);
    d.docker(&["kill", "-s", "USR1", "kill"]).ok();
    engines::wait_until("the USR1 trap", Duration::from_secs(20), || {
        let o = d.docker(&["exec", "kill", "cat", "/tmp/got"]);
        (o.stdout == "usr1\n").then_some(())
    });
    d.docker(&["kill", "kill"]).ok();
    engines::wait_until("the container to stop", Duration::from_secs(20), || {
        (d.inspect("kill", "{{.State.Running}}") == "false").then_some(())
    });
    assert_eq!(d.inspect("kill", "{{.State.ExitCode}}"), "137");
    d.remove("kill", &id);
}

fn pause_unpause(d: &Docker) {
    let id = d.detached(
        "pause",
        &[],
        &[
            "sh",
            "-c",
            "while :; do date +%s%N > /tmp/t; sleep 0.05; done",
        ],
    );
    d.docker(&["pause", "pause"]).ok();
    assert_eq!(d.inspect("pause", "{{.State.Status}}"), "paused");
    let st = engines::runtime_state(&d.scratch, &d.runtime_root(), &id);
    assert_eq!(st["status"], "paused", "{st}");
    let o = d.docker(&["exec", "pause", "true"]);
    assert!(!o.success() && o.stderr.contains("paused"), "{o}");
    d.docker(&["unpause", "pause"]).ok();
    assert_eq!(d.inspect("pause", "{{.State.Status}}"), "running");
    // The loop runs again: its timestamp moves.
    let a = d.docker(&["exec", "pause", "cat", "/tmp/t"]).stdout;
    engines::wait_until("the workload to run again", Duration::from_secs(20), || {
        let b = d.docker(&["exec", "pause", "cat", "/tmp/t"]).stdout;
        (b != a).then_some(())
    });
    d.remove("pause", &id);
}

fn update_memory_and_cpus(d: &Docker) {
    let id = d.detached("update", &[], &["sleep", "1000"]);
    d.docker(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "update",
    ])
    .ok();
    d.docker(&["update", "--cpus", "0.5", "update"]).ok();
    let mem = engines::cg_read("memory/memory.limit_in_bytes", "memory.max");
    let cpu = engines::cg_read("cpu/cpu.cfs_quota_us", "cpu.max");
    let o = d.docker(&["exec", "update", "sh", "-c", &format!("{mem}; {cpu}")]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(engines::parse_limit(lines[0]), 64 << 20, "{o}");
    assert!(lines[1].starts_with("50000"), "{o}");
    d.remove("update", &id);
}

fn resource_limits(d: &Docker) {
    let script = [
        engines::cg_read("memory/memory.limit_in_bytes", "memory.max"),
        engines::cg_read("pids/pids.max", "pids.max"),
        engines::cg_read("cpu/cpu.cfs_quota_us", "cpu.max"),
    ]
    .join("; ");
    let out = d.sh_ok(
        &["--memory", "32m", "--pids-limit", "50", "--cpus", "0.25"],
        &script,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(engines::parse_limit(lines[0]), 32 << 20, "{out}");
    assert_eq!(lines[1], "50", "{out}");
    assert!(lines[2].starts_with("25000"), "{out}");
}

fn cap_drop_all(d: &Docker) {
    let out = d.sh_ok(&["--cap-drop", "ALL"], "cat /proc/self/status");
    for key in ["CapPrm", "CapEff", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(engines::cap_field(&out, key), 0, "{key}: {out}");
    }
}

fn privileged(d: &Docker) {
    if !engines::host_has_all_caps() && !common::is_capsa() {
        common::skip(
            "this host lacks capabilities Docker's --privileged asks for; runc fails (moby#42906), capsa trims them",
        );
        return;
    }
    let out = d.sh_ok(
        &["--privileged"],
        "cat /proc/self/status; ls /dev | wc -l; touch /sys/kernel/uevent_helper 2>&1 || true",
    );
    let eff = engines::cap_field(&out, "CapEff");
    assert_eq!(eff, engines::cap_field(&out, "CapBnd"), "{out}");
    assert_ne!(eff & (1 << common::cap_number("SYS_ADMIN")), 0, "{out}");
    assert_eq!(common::status_field(&out, "Seccomp"), Some("0"), "{out}");
    // The host's devices, not the default handful.
    let ndev: usize = out
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("device count");
    assert!(ndev > 20, "only {ndev} entries in /dev: {out}");
    // And the unprivileged default for comparison: few caps, seccomp on.
    let out = d.sh_ok(&[], "cat /proc/self/status");
    assert_eq!(
        engines::cap_field(&out, "CapEff") & (1 << common::cap_number("SYS_ADMIN")),
        0
    );
    assert_eq!(common::status_field(&out, "Seccomp"), Some("2"), "{out}");
}

fn read_only_and_tmpfs(d: &Docker) {
    let o = d.run_rm(
        &["--read-only", "--tmpfs", "/scratch"],
        &["sh", "-c", "touch /x 2>&1; echo rc=$?; touch /scratch/y && echo tmpfs-ok; grep ' /scratch ' /proc/mounts"],
    );
    o.ok();
    assert!(o.stdout.contains("Read-only file system"), "{o}");
    assert!(o.stdout.contains("rc=1"), "{o}");
    assert!(o.stdout.contains("tmpfs-ok"), "{o}");
    assert!(o.stdout.contains("tmpfs /scratch tmpfs rw"), "{o}");
}

fn user_and_init(d: &Docker) {
    let out = d.sh_ok(&["--user", "1000:1000"], "echo $(id -u):$(id -g)");
    assert_eq!(out, "1000:1000\n");
    let out = d.sh_ok(&["--init"], "cat /proc/1/comm; echo $$");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "docker-init", "{out}");
    assert_ne!(
        lines[1], "1",
        "the workload should not be pid 1 under --init: {out}"
    );
}

fn volumes(d: &Docker) {
    let dir = d.scratch.mkdir("vol");
    fs::write(dir.join("in"), "from-host\n").expect("write");
    let bind = format!("{}:/vol", s(&dir));
    let ro = format!("{}:/ro:ro", s(&dir));
    let out = d.sh_ok(
        &["-v", &bind, "-v", &ro],
        "cat /vol/in; echo from-container > /vol/out; touch /ro/x 2>&1 || true",
    );
    assert!(out.starts_with("from-host\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(
        fs::read_to_string(dir.join("out")).unwrap_or_default(),
        "from-container\n"
    );
}

fn cp_top_stats(d: &Docker) {
    let id = d.detached("cp", &[], &["sleep", "1000"]);
    let src = d.scratch.write_file("cp-in", "copied-in\n");
    d.docker(&["cp", &s(&src), "cp:/tmp/cp-in"]).ok();
    let o = d.docker(&[
        "exec",
        "cp",
        "sh",
        "-c",
        "cat /tmp/cp-in; echo made-inside > /tmp/cp-out",
    ]);
    assert_eq!(o.stdout, "copied-in\n", "{o}");
    let dst = d.scratch.path("cp-out");
    d.docker(&["cp", "cp:/tmp/cp-out", &s(&dst)]).ok();
    assert_eq!(
        fs::read_to_string(&dst).unwrap_or_default(),
        "made-inside\n"
    );
    let top = d.docker(&["top", "cp"]);
    top.ok();
    let pid = d.inspect("cp", "{{.State.Pid}}");
    assert!(
        top.stdout.contains("sleep 1000") && top.stdout.contains(&pid),
        "{top}"
    );
    let stats = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "cp",
    ]);
    stats.ok();
    assert!(stats.stdout.starts_with("cp 1 "), "{stats}");
    d.remove("cp", &id);
}

fn rm_force_running(d: &Docker) {
    let id = d.detached("rmf", &[], &["sleep", "1000"]);
    let pid: i32 = d.inspect("rmf", "{{.State.Pid}}").parse().expect("pid");
    d.remove("rmf", &id);
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "the workload survived rm -f"
    );
    let o = d.docker(&["inspect", "rmf"]);
    assert!(!o.success(), "{o}");
}

fn missing_and_non_executable(d: &Docker) {
    let o = d.run_rm(&[], &["no-such-command"]);
    assert_eq!(o.code, Some(127), "{o}");
    assert!(
        o.stderr.contains("executable file not found in $PATH"),
        "{o}"
    );
    let o = d.run_rm(&[], &["/etc/not-executable"]);
    assert_eq!(o.code, Some(126), "{o}");
    assert!(o.stderr.contains("permission denied"), "{o}");
}

fn runtime_error_reaches_the_user(d: &Docker) {
    // Docker accepts this sysctl name; only the runtime's write fails.
    let o = d.run_rm(&["--sysctl", "kernel.msgmax=not-a-number"], &["true"]);
    assert_eq!(o.code, Some(125), "{o}");
    assert!(o.stderr.contains("OCI runtime create failed"), "{o}");
    assert!(
        o.stderr.contains("/proc/sys/kernel/msgmax") && o.stderr.contains("invalid argument"),
        "{o}"
    );
}

fn main() -> ExitCode {
    let tests: &[Test<Docker>] = &[
        ("run_rm_output_and_exit_codes", run_rm_output_and_exit_codes),
        ("run_interactive", run_interactive),
        ("run_tty", run_tty),
        ("exec_flags", exec_flags),
        ("stop_and_restart", stop_and_restart),
        ("kill_signal", kill_signal),
        ("pause_unpause", pause_unpause),
        ("update_memory_and_cpus", update_memory_and_cpus),
        ("resource_limits", resource_limits),
        ("cap_drop_all", cap_drop_all),
        ("privileged", privileged),
        ("read_only_and_tmpfs", read_only_and_tmpfs),
        ("user_and_init", user_and_init),
        ("volumes", volumes),
        ("cp_top_stats", cp_top_stats),
        ("rm_force_running", rm_force_running),
        ("missing_and_non_executable", missing_and_non_executable),
        (
            "runtime_error_reaches_the_user",
            runtime_error_reaches_the_user,
        ),
    ];
    engines::run_suite(tests)
}

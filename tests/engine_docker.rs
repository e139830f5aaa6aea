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
use engines::dockerlike::{self, DockerLike};
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
        // Debian's CLI by path: another `docker` (e.g. a newer client in
        // /usr/local/bin) may come first on PATH and does not match dockerd 20.10.
        ("/usr/bin/docker", "docker.io"),
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
        let cli = engines::which("/usr/bin/docker").ok_or("no /usr/bin/docker (docker.io)")?;
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

impl DockerLike for Docker {
    const RM_FORCE: &'static [&'static str] = &["rm", "-f"];
    const INIT_COMM: &'static str = "docker-init";

    fn cli_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        Docker::cli_run(&self.scratch, &self.cli, &self.host, args, stdin)
    }

    fn run_flags(&self) -> Vec<String> {
        ["--runtime", "capsa", "--network", "none"]
            .map(str::to_owned)
            .to_vec()
    }

    fn image(&self) -> &str {
        IMAGE
    }

    fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    /// The state dir Docker gives the runtime (`--root`).
    fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime-runc/moby")
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
        self.cli(args)
    }
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

fn privileged(d: &Docker) {
    if !engines::host_has_all_caps() {
        // Docker 20.10's --privileged asks for every capability the kernel
        // knows (moby#42906), and this host's bounding set lacks some
        // (CAP_SYS_RESOURCE): the runtime must refuse cleanly, and the
        // reason must reach the Docker user.
        let o = d.run_rm(&["--privileged"], &["true"]);
        assert_eq!(o.code, Some(125), "{o}");
        assert!(o.stderr.contains("OCI runtime create failed"), "{o}");
        if common::is_capsa() {
            assert!(
                o.stderr.contains("process.capabilities.")
                    && o.stderr.contains("is not in the runtime's bounding set"),
                "{o}"
            );
        }
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
    let mut tests: Vec<Test<Docker>> = dockerlike::shared();
    tests.extend([
        ("stop_and_restart", stop_and_restart as fn(&Docker)),
        ("privileged", privileged),
        ("cp_top_stats", cp_top_stats),
        (
            "runtime_error_reaches_the_user",
            runtime_error_reaches_the_user,
        ),
    ]);
    engines::run_suite(&tests)
}

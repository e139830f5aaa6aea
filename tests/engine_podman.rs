//! podman 4.3 (through conmon) runs its containers on the runtime under test,
//! configured only through containers.conf: `[engine.runtimes] capsa = [PATH]`
//! and capsa in `runtime_supports_json` (so podman passes the JSON log flags
//! and maps the runtime's error to 126/127). Storage, run root, tmp dir,
//! events log, network config and cgroup parent are private to the run.
//!
//! PATH is a two-line wrapper that adds `--root` for the runtime: podman
//! never passes one, and its clean-up process (`podman container cleanup`,
//! started by conmon) drops `--runtime-flag`s, so a root given that way is
//! not used by every call; the default root (/run/capsa) is shared by
//! everything on this machine. See tests/engines/mod.rs for the harness.

mod common;
mod engines;

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::Output;
use engines::{Engine, Scratch, Test, s};

const IMAGE: &str = "localhost/capsa-test/busybox:1";

struct Podman {
    scratch: Scratch,
    podman: PathBuf,
    conf: PathBuf,
    global: Vec<String>,
    runtime_root: PathBuf,
}

impl Engine for Podman {
    const NAME: &'static str = "podman";
    const NEEDS: &'static [(&'static str, &'static str)] = &[
        ("podman", "podman"),
        ("conmon", "conmon"),
        ("slirp4netns", "slirp4netns"),
        ("/usr/libexec/podman/catatonit", "catatonit"),
    ];

    fn start() -> Result<Podman, String> {
        let scratch = Scratch::new("podman");
        let d = |n: &str| s(&scratch.mkdir(n));
        let (root, runroot, tmp, runtime_root) =
            (d("root"), d("runroot"), d("tmp"), d("capsa-root"));
        scratch.mkdir("bin");
        let wrapper = scratch.script(
            "bin/capsa",
            &format!(
                "exec {} --root {runtime_root} \"$@\"",
                s(&common::runtime())
            ),
        );
        let conf = scratch.write_file(
            "containers.conf",
            &format!(
                r#"[containers]
# This host caps RLIMIT_NOFILE at 20000 and lacks CAP_SYS_RESOURCE.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
runtime = "capsa"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "capsa"]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
tmp_dir = "{tmp}"
volume_path = "{volumes}"
static_dir = "{static_dir}"

[engine.runtimes]
capsa = ["{wrapper}"]

[network]
network_config_dir = "{net}"
"#,
                events = s(&scratch.path("events.log")),
                volumes = d("volumes"),
                static_dir = d("static"),
                wrapper = s(&wrapper),
                net = d("net"),
            ),
        );
        scratch.write_file(
            "storage.conf",
            &format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{runroot}\"\ngraphroot = \"{root}\"\n"
            ),
        );
        let podman = engines::which("podman").ok_or("no podman")?;
        let global = [
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--tmpdir",
            &tmp,
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        .map(str::to_owned)
        .to_vec();
        let p = Podman {
            scratch,
            podman,
            conf,
            global,
            runtime_root: PathBuf::from(runtime_root),
        };
        let tar = p.scratch.busybox_tar();
        let o = p.podman(&["import", "--change", "ENV PATH=/bin", &s(&tar), IMAGE]);
        if !o.success() {
            return Err(format!("podman import: {o}"));
        }
        Ok(p)
    }

    fn diagnostics(&self) -> String {
        let ps = self.podman(&["ps", "-a"]);
        format!(
            "podman ps -a:\n{}\n{}",
            ps.stdout,
            engines::tail_file(&self.scratch.path("events.log"), 20)
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        self.scratch.sweep();
    }
}

impl Podman {
    fn podman_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut full: Vec<&str> = self.global.iter().map(String::as_str).collect();
        full.extend_from_slice(args);
        let input = stdin.map(|text| self.scratch.write_file("stdin", text));
        let storage = self.scratch.path("storage.conf");
        self.scratch.run(&self.podman, &full, |c| {
            c.env("CONTAINERS_CONF", &self.conf);
            c.env("CONTAINERS_STORAGE_CONF", &storage);
            if let Some(p) = input {
                c.stdin(fs::File::open(p).expect("open stdin file"));
            }
        })
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.podman_with(args, None)
    }

    /// `podman run --rm --cgroup-parent P OPTS IMAGE CMD...`
    fn run_rm(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec![
            "run",
            "--rm",
            "--cgroup-parent",
            &self.scratch.cgroup_parent,
        ];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.podman(&args)
    }

    #[track_caller]
    fn sh_ok(&self, opts: &[&str], script: &str) -> String {
        let o = self.run_rm(opts, &["sh", "-c", script]);
        o.ok();
        o.stdout
    }

    /// A detached container named `name` running `cmd`; returns its id.
    #[track_caller]
    fn detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let _ = self.podman(&["rm", "-f", "-t", "0", name]);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--cgroup-parent",
            &self.scratch.cgroup_parent,
        ];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let o = self.podman(&args);
        o.ok();
        o.stdout.trim().to_owned()
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        let o = self.podman(&["inspect", "-f", format, name]);
        o.ok();
        o.stdout.trim().to_owned()
    }

    #[track_caller]
    fn remove(&self, name: &str, id: &str) {
        self.podman(&["rm", "-f", "-t", "0", name]).ok();
        assert!(
            !self.runtime_root.join(id).exists(),
            "the runtime's state of {id} survived podman rm -f"
        );
    }
}

fn run_rm_output_and_exit_codes(p: &Podman) {
    let o = p.run_rm(&[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.code, Some(3), "{o}");
    assert_eq!(o.stdout, "out\n", "{o}");
    assert!(o.stderr.contains("err"), "{o}");
    assert_eq!(p.run_rm(&[], &["true"]).code, Some(0));
    let fds = p.sh_ok(&[], "ls /proc/1/fd; true");
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds}"
    );
}

fn run_interactive(p: &Podman) {
    let cg = p.scratch.cgroup_parent.clone();
    let o = p.podman_with(
        &[
            "run",
            "--rm",
            "-i",
            "--cgroup-parent",
            &cg,
            IMAGE,
            "sh",
            "-c",
            "read l; echo got:$l; cat",
        ],
        Some("first\nsecond\n"),
    );
    o.ok();
    assert_eq!(o.stdout, "got:first\nsecond\n", "{o}");
}

fn run_tty(p: &Podman) {
    let out = p.sh_ok(&["-t"], "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys");
    assert!(
        out.contains("/dev/pts/") && out.contains("both-ttys"),
        "{out:?}"
    );
}

fn exec_flags(p: &Podman) {
    let id = p.detached("exec", &[], &["sleep", "1000"]);
    let o = p.podman(&["exec", "exec", "sh", "-c", "echo in; exit 7"]);
    assert_eq!((o.code, o.stdout.as_str()), (Some(7), "in\n"), "{o}");
    let o = p.podman(&["exec", "-t", "exec", "tty"]);
    o.ok();
    assert!(o.stdout.contains("/dev/pts/"), "{o}");
    let o = p.podman(&[
        "exec",
        "-u",
        "1000",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "exec",
        "sh",
        "-c",
        "echo $(id -u):$FOO:$(pwd)",
    ]);
    o.ok();
    assert_eq!(o.stdout, "1000:bar:/tmp\n", "{o}");
    p.podman(&[
        "exec",
        "-d",
        "exec",
        "sh",
        "-c",
        "echo detached > /tmp/marker",
    ])
    .ok();
    engines::wait_until("exec -d's file", Duration::from_secs(20), || {
        (p.podman(&["exec", "exec", "cat", "/tmp/marker"]).stdout == "detached\n").then_some(())
    });
    let o = p.podman(&[
        "exec",
        "exec",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(
        o.stdout.starts_with("sleep 1000"),
        "exec outside the pid namespace: {o}"
    );
    p.remove("exec", &id);
}

fn stop_term_then_kill(p: &Podman) {
    let id = p.detached(
        "stopterm",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ],
    );
    p.podman(&["stop", "-t", "20", "stopterm"]).ok();
    assert_eq!(p.inspect("stopterm", "{{.State.ExitCode}}"), "0");
    p.remove("stopterm", &id);
    // A workload that ignores SIGTERM gets SIGKILL after the timeout.
    let id = p.detached(
        "stopkill",
        &[],
        &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
    );
    let start = Instant::now();
    p.podman(&["stop", "-t", "1", "stopkill"]).ok();
    assert!(start.elapsed() >= Duration::from_secs(1), "no grace period");
    assert_eq!(p.inspect("stopkill", "{{.State.ExitCode}}"), "137");
    p.remove("stopkill", &id);
}

fn restart(p: &Podman) {
    let id = p.detached(
        "restart",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ],
    );
    let pid1 = p.inspect("restart", "{{.State.Pid}}");
    p.podman(&["restart", "-t", "5", "restart"]).ok();
    assert_eq!(p.inspect("restart", "{{.State.Running}}"), "true");
    let pid2 = p.inspect("restart", "{{.State.Pid}}");
    assert_ne!(pid1, pid2, "restart did not start a new process");
    let st = engines::runtime_state(&p.scratch, &p.runtime_root, &id);
    assert_eq!(
        (st["status"].as_str(), st["pid"].to_string()),
        (Some("running"), pid2),
        "{st}"
    );
    p.remove("restart", &id);
}

fn rm_force_running(p: &Podman) {
    let id = p.detached("rmf", &[], &["sleep", "1000"]);
    let pid = p.inspect("rmf", "{{.State.Pid}}");
    p.remove("rmf", &id);
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "the workload survived rm -f"
    );
}

fn pause_unpause(p: &Podman) {
    let id = p.detached(
        "pause",
        &[],
        &[
            "sh",
            "-c",
            "while :; do date +%s%N > /tmp/t; sleep 0.05; done",
        ],
    );
    p.podman(&["pause", "pause"]).ok();
    assert_eq!(p.inspect("pause", "{{.State.Status}}"), "paused");
    let st = engines::runtime_state(&p.scratch, &p.runtime_root, &id);
    assert_eq!(st["status"], "paused", "{st}");
    p.podman(&["unpause", "pause"]).ok();
    assert_eq!(p.inspect("pause", "{{.State.Status}}"), "running");
    let a = p.podman(&["exec", "pause", "cat", "/tmp/t"]).stdout;
    engines::wait_until("the workload to run again", Duration::from_secs(20), || {
        (p.podman(&["exec", "pause", "cat", "/tmp/t"]).stdout != a).then_some(())
    });
    p.remove("pause", &id);
}

fn update_memory_and_cpus(p: &Podman) {
    let id = p.detached("update", &[], &["sleep", "1000"]);
    p.podman(&["update", "--memory", "64m", "--cpus", "0.5", "update"])
        .ok();
    let mem = engines::cg_read("memory/memory.limit_in_bytes", "memory.max");
    let cpu = engines::cg_read("cpu/cpu.cfs_quota_us", "cpu.max");
    let o = p.podman(&["exec", "update", "sh", "-c", &format!("{mem}; {cpu}")]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(engines::parse_limit(lines[0]), 64 << 20, "{o}");
    assert!(lines[1].starts_with("50000"), "{o}");
    p.remove("update", &id);
}

fn kill_signal(p: &Podman) {
    let id = p.detached(
        "kill",
        &[],
        &[
            "sh",
            "-c",
            "trap 'echo usr1 > /tmp/got' USR1; while :; do sleep 0.1; done",
        ],
    );
    p.podman(&["kill", "-s", "USR1", "kill"]).ok();
    engines::wait_until("the USR1 trap", Duration::from_secs(20), || {
        (p.podman(&["exec", "kill", "cat", "/tmp/got"]).stdout == "usr1\n").then_some(())
    });
    p.podman(&["kill", "-s", "KILL", "kill"]).ok();
    engines::wait_until("the container to stop", Duration::from_secs(20), || {
        (p.inspect("kill", "{{.State.Running}}") == "false").then_some(())
    });
    assert_eq!(p.inspect("kill", "{{.State.ExitCode}}"), "137");
    p.remove("kill", &id);
}

fn resource_limits(p: &Podman) {
    let script = [
        engines::cg_read("memory/memory.limit_in_bytes", "memory.max"),
        engines::cg_read("pids/pids.max", "pids.max"),
        engines::cg_read("cpu/cpu.cfs_quota_us", "cpu.max"),
    ]
    .join("; ");
    let out = p.sh_ok(
        &["--memory", "32m", "--pids-limit", "50", "--cpus", "0.25"],
        &script,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(engines::parse_limit(lines[0]), 32 << 20, "{out}");
    assert_eq!(lines[1], "50", "{out}");
    assert!(lines[2].starts_with("25000"), "{out}");
}

fn cap_drop_all(p: &Podman) {
    let out = p.sh_ok(&["--cap-drop", "ALL"], "cat /proc/self/status");
    for key in ["CapPrm", "CapEff", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(engines::cap_field(&out, key), 0, "{key}: {out}");
    }
}

fn privileged(p: &Podman) {
    let out = p.sh_ok(&["--privileged"], "cat /proc/self/status; ls /dev | wc -l");
    let eff = engines::cap_field(&out, "CapEff");
    // podman asks for its own bounding set: everything this host allows.
    let host = fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert_eq!(eff, engines::cap_field(&host, "CapBnd"), "{out}");
    assert_eq!(common::status_field(&out, "Seccomp"), Some("0"), "{out}");
    let ndev: usize = out
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("device count");
    assert!(ndev > 20, "only {ndev} entries in /dev: {out}");
}

fn read_only_and_tmpfs(p: &Podman) {
    let out = p.sh_ok(
        &["--read-only", "--tmpfs", "/scratch"],
        "touch /x 2>&1; echo rc=$?; touch /scratch/y && echo tmpfs-ok; grep ' /scratch ' /proc/mounts",
    );
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
    assert!(
        out.contains("tmpfs-ok") && out.contains("tmpfs /scratch tmpfs rw"),
        "{out}"
    );
}

fn user_and_init(p: &Podman) {
    assert_eq!(
        p.sh_ok(&["--user", "1000"], "echo $(id -u):$(id -g)"),
        "1000:1000\n"
    );
    let out = p.sh_ok(&["--init"], "cat /proc/1/comm; echo $$");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "podman-init", "{out}");
    assert_ne!(lines[1], "1", "{out}");
}

fn pid_host(p: &Podman) {
    let me = std::process::id();
    let out = p.sh_ok(
        &["--pid", "host"],
        &format!("test -d /proc/{me} && echo sees-host"),
    );
    assert_eq!(out, "sees-host\n");
    // podman stops a --pid host container with `kill --all`.
    let id = p.detached("pidhost", &["--pid", "host"], &["sleep", "1000"]);
    let pid = p.inspect("pidhost", "{{.State.Pid}}");
    p.podman(&["stop", "-t", "1", "pidhost"]).ok();
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "stop left the workload running"
    );
    p.remove("pidhost", &id);
}

fn volumes(p: &Podman) {
    let dir = p.scratch.mkdir("vol");
    fs::write(dir.join("in"), "from-host\n").expect("write");
    let bind = format!("{}:/vol", s(&dir));
    let ro = format!("{}:/ro:ro", s(&dir));
    let out = p.sh_ok(
        &["-v", &bind, "-v", &ro],
        "cat /vol/in; echo from-container > /vol/out; touch /ro/x 2>&1 || true",
    );
    assert!(
        out.starts_with("from-host\n") && out.contains("Read-only file system"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("out")).unwrap_or_default(),
        "from-container\n"
    );
}

fn network_none(p: &Podman) {
    let out = p.sh_ok(&["--network", "none"], "ip -o link | cut -d: -f2");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"], "{out}");
}

/// A global IPv4 address of this host, which slirp4netns can connect to.
fn host_ipv4() -> Option<String> {
    let o = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(word.split('/').next()?.to_owned())
}

fn slirp4netns(p: &Podman) {
    let out = p.sh_ok(
        &["--network", "slirp4netns"],
        "ip -o -4 addr show tap0; ip route",
    );
    assert!(out.contains("10.0.2.100/24"), "{out}");
    assert!(out.contains("default via 10.0.2.2"), "{out}");
    // Outbound TCP through slirp4netns to a listener on this host.
    let Some(ip) = host_ipv4() else {
        common::skip("no global IPv4 address on this host: slirp4netns TCP check skipped");
        return;
    };
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    // Accept and read one line, then close: busybox nc exits when we do.
    let server = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok((conn, _)) = listener.accept() {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                let mut line = String::new();
                let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(conn), &mut line);
                return line;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        String::new()
    });
    let script = format!("echo hello-from-slirp | nc {ip} {port}");
    let o = p.run_rm(&["--network", "slirp4netns"], &["sh", "-c", &script]);
    let got = server.join().unwrap_or_default();
    assert_eq!(got, "hello-from-slirp\n", "{o}");
}

fn missing_and_non_executable(p: &Podman) {
    let o = p.run_rm(&[], &["no-such-command"]);
    assert_eq!(o.code, Some(127), "{o}");
    assert!(
        o.stderr.contains("executable file not found in $PATH"),
        "{o}"
    );
    assert!(
        o.stderr
            .contains("OCI runtime attempted to invoke a command that was not found"),
        "{o}"
    );
    let o = p.run_rm(&[], &["/etc/not-executable"]);
    assert_eq!(o.code, Some(126), "{o}");
    assert!(
        o.stderr.contains("permission denied") && o.stderr.contains("OCI permission denied"),
        "{o}"
    );
}

fn main() -> ExitCode {
    let tests: &[Test<Podman>] = &[
        ("run_rm_output_and_exit_codes", run_rm_output_and_exit_codes),
        ("run_interactive", run_interactive),
        ("run_tty", run_tty),
        ("exec_flags", exec_flags),
        ("stop_term_then_kill", stop_term_then_kill),
        ("restart", restart),
        ("rm_force_running", rm_force_running),
        ("pause_unpause", pause_unpause),
        ("update_memory_and_cpus", update_memory_and_cpus),
        ("kill_signal", kill_signal),
        ("resource_limits", resource_limits),
        ("cap_drop_all", cap_drop_all),
        ("privileged", privileged),
        ("read_only_and_tmpfs", read_only_and_tmpfs),
        ("user_and_init", user_and_init),
        ("pid_host", pid_host),
        ("volumes", volumes),
        ("network_none", network_none),
        ("slirp4netns", slirp4netns),
        ("missing_and_non_executable", missing_and_non_executable),
    ];
    engines::run_suite(tests)
}

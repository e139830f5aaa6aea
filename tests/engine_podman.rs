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
use engines::dockerlike::{self, DockerLike};
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
        let (podman, global) = engines::private_podman(&scratch, &root, &runroot, &tmp)?;
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

impl DockerLike for Podman {
    const RM_FORCE: &'static [&'static str] = &["rm", "-f", "-t", "0"];
    const INIT_COMM: &'static str = "podman-init";

    fn cli_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
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

    fn run_flags(&self) -> Vec<String> {
        vec!["--cgroup-parent".into(), self.scratch.cgroup_parent.clone()]
    }

    fn image(&self) -> &str {
        IMAGE
    }

    fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    fn runtime_root(&self) -> PathBuf {
        self.runtime_root.clone()
    }
}

impl Podman {
    fn podman(&self, args: &[&str]) -> Output {
        self.cli(args)
    }
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

/// podman maps the runtime's JSON error to its own words (and to 127/126)
/// only for runtimes in runtime_supports_json.
fn error_messages_as_podman_words_them(p: &Podman) {
    let o = p.run_rm(&[], &["no-such-command"]);
    assert_eq!(o.code, Some(127), "{o}");
    assert!(
        o.stderr
            .contains("OCI runtime attempted to invoke a command that was not found"),
        "{o}"
    );
    let o = p.run_rm(&[], &["/etc/not-executable"]);
    assert_eq!(o.code, Some(126), "{o}");
    assert!(o.stderr.contains("OCI permission denied"), "{o}");
}

fn main() -> ExitCode {
    let mut tests: Vec<Test<Podman>> = dockerlike::shared();
    tests.extend([
        ("stop_term_then_kill", stop_term_then_kill as fn(&Podman)),
        ("restart", restart),
        ("privileged", privileged),
        ("pid_host", pid_host),
        ("network_none", network_none),
        ("slirp4netns", slirp4netns),
        (
            "error_messages_as_podman_words_them",
            error_messages_as_podman_words_them,
        ),
    ]);
    engines::run_suite(&tests)
}

//! containerd 1.6 runs its containers on the runtime under test: with
//! `ctr run --runc-binary` (and `--runc-root`, to keep the runtime's state
//! private), and the Kubernetes way, through the CRI plugin with a runtime
//! entry whose options name `BinaryName` (what a RuntimeClass handler
//! selects); tests/engines/cri.py plays kubelet. The daemon is private: its
//! own root, state dir, sockets, config.toml and cgroup parent. See
//! tests/engines/mod.rs for the harness.

mod common;
mod engines;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use common::Output;
use engines::{Daemon, Engine, Scratch, Test, s};

const IMAGE: &str = "capsa.test/busybox:1";
const PAUSE: &str = "capsa.test/pause:1";

struct Containerd {
    scratch: Scratch,
    daemon: Daemon,
    ctr: PathBuf,
    sock: String,
    /// `--runc-root` for ctr's containers (the runtime's --root is this/<namespace>).
    runc_root: PathBuf,
    /// The CRI runtime entry's `Root`.
    cri_root: PathBuf,
}

impl Engine for Containerd {
    const NAME: &'static str = "containerd";
    const NEEDS: &'static [(&'static str, &'static str)] = &[
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
    ];

    fn start() -> Result<Containerd, String> {
        let scratch = Scratch::new("containerd");
        let d = |n: &str| s(&scratch.mkdir(n));
        let sock = s(&scratch.path("containerd.sock"));
        let runc_root = scratch.mkdir("runc-root");
        let cri_root = scratch.mkdir("cri-root");
        let runtime = s(&common::runtime());
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{sock}.debug"
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_port = "0"
  sandbox_image = "{PAUSE}"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host lacks.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  # What a Kubernetes RuntimeClass with handler "capsa" selects.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa.options]
      BinaryName = "{runtime}"
      Root = "{cri_root}"
"#,
            root = d("root"),
            state = d("state"),
            opt = d("opt"),
            cni_bin = d("cni-bin"),
            cni_conf = d("cni-conf"),
            cri_root = s(&cri_root),
        );
        let config_path = scratch.write_file("config.toml", &config);
        scratch.mkdir("fifo");
        let containerd = engines::which("containerd").ok_or("no containerd")?;
        let ctr = engines::which("ctr").ok_or("no ctr")?;
        let mut daemon = Daemon::spawn(
            "containerd",
            &containerd,
            &["--config", &s(&config_path)],
            scratch.path("containerd.log"),
        );
        let ready = daemon.wait_ready(Duration::from_secs(60), || {
            let o = scratch.run(&ctr, &["--address", &sock, "version"], |_| {});
            o.success()
        });
        let c = Containerd {
            scratch,
            daemon,
            ctr,
            sock,
            runc_root,
            cri_root,
        };
        ready?;
        let archive = c.oci_archive();
        for ns in ["default", "k8s.io"] {
            let o = c.ctr_ns(ns, &["images", "import", &s(&archive)]);
            if !o.success() {
                return Err(format!("ctr images import: {o}"));
            }
        }
        Ok(c)
    }

    fn diagnostics(&self) -> String {
        self.daemon.tail(40)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for ns in ["default", "k8s.io"] {
            for id in self
                .ctr_ns(ns, &["task", "ls", "-q"])
                .stdout
                .split_whitespace()
            {
                let _ = self.ctr_ns(ns, &["task", "kill", "-s", "SIGKILL", id]);
                let _ = self.ctr_ns(ns, &["task", "delete", "-f", id]);
            }
            for id in self
                .ctr_ns(ns, &["containers", "ls", "-q"])
                .stdout
                .split_whitespace()
            {
                let _ = self.ctr_ns(ns, &["containers", "rm", id]);
            }
        }
        self.daemon.stop(Duration::from_secs(30));
        self.scratch.sweep();
    }
}

impl Containerd {
    fn ctr_ns(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["--address", &self.sock, "-n", ns];
        full.extend_from_slice(args);
        self.scratch.run(&self.ctr, &full, |_| {})
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_ns("default", args)
    }

    /// An OCI image layout archive holding the busybox image and a "pause"
    /// image (the CRI sandbox) that sleeps, for `ctr images import`.
    fn oci_archive(&self) -> PathBuf {
        engines::oci_archive(
            &self.scratch,
            &[(IMAGE, &["sh"]), (PAUSE, &["sleep", "1000000"])],
        )
    }

    /// `ctr run` flags that select the runtime under test, keep its state and
    /// the fifos private, and put the container in our cgroup parent.
    fn run_flags(&self, id: &str) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            s(&common::runtime()),
            "--runc-root".into(),
            s(&self.runc_root),
            "--fifo-dir".into(),
            s(&self.scratch.path("fifo")),
            "--cgroup".into(),
            self.cgroup(id),
        ]
    }

    fn cgroup(&self, id: &str) -> String {
        format!("{}/{id}", self.scratch.cgroup_parent)
    }

    /// `ctr run [-d|--rm] FLAGS OPTS IMAGE ID CMD...`
    fn run(&self, mode: &str, id: &str, opts: &[&str], cmd: &[&str]) -> Output {
        let flags = self.run_flags(id);
        let mut args = vec!["run", mode];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    #[track_caller]
    fn sh_ok(&self, id: &str, opts: &[&str], script: &str) -> String {
        let o = self.run("--rm", id, opts, &["sh", "-c", script]);
        o.ok();
        o.stdout
    }

    /// A detached task; returns its init's pid.
    #[track_caller]
    fn detached(&self, id: &str, opts: &[&str], cmd: &[&str]) -> i32 {
        self.run("-d", id, opts, cmd).ok();
        self.task_pid(id)
    }

    fn task_pid(&self, id: &str) -> i32 {
        let ls = self.ctr(&["task", "ls"]);
        ls.ok();
        ls.stdout
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id))
                    .then(|| f.get(1)?.parse().ok())
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no task {id}: {ls}"))
    }

    fn task_status(&self, id: &str) -> String {
        let ls = self.ctr(&["task", "ls"]);
        ls.stdout
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id))
                    .then(|| f.get(2).map(|s| s.to_string()))
                    .flatten()
            })
            .unwrap_or_default()
    }

    fn exec(&self, id: &str, exec_id: &str, opts: &[&str], cmd: &[&str]) -> Output {
        let fifo = s(&self.scratch.path("fifo"));
        let mut args = vec!["task", "exec", "--fifo-dir", &fifo, "--exec-id", exec_id];
        args.extend_from_slice(opts);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// Kill, delete and remove a task and its container; nothing may remain.
    #[track_caller]
    fn remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        self.ctr(&["task", "delete", "-f", id]).ok();
        self.ctr(&["containers", "rm", id]).ok();
        assert!(
            !self.runc_root.join("default").join(id).exists(),
            "runtime state of {id} left"
        );
        assert!(
            engines::cgroup_procs(&self.cgroup(id)).is_empty(),
            "processes left in {id}'s cgroup"
        );
    }

    fn runtime_state(&self, id: &str) -> serde_json::Value {
        engines::runtime_state(&self.scratch, &self.runc_root.join("default"), id)
    }

    fn host_cgroup(&self, id: &str, v1: &str, v2: &str) -> String {
        let p = engines::host_cgroup_file(&self.cgroup(id), v1, v2)
            .unwrap_or_else(|| panic!("no {v1} or {v2} for cgroup {}", self.cgroup(id)));
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }
}

fn run_rm_output_and_exit_codes(c: &Containerd) {
    let o = c.run("--rm", "rm1", &[], &["sh", "-c", "echo out; exit 3"]);
    assert_eq!((o.code, o.stdout.as_str()), (Some(3), "out\n"), "{o}");
    // The shim leaks a socket as fd 3 into create: it must not reach the workload.
    let fds = c.sh_ok("rm2", &[], "ls /proc/1/fd; true");
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds}"
    );
}

fn detached_exec_ps(c: &Containerd) {
    let pid = c.detached("exec", &[], &["sleep", "1000"]);
    let st = c.runtime_state("exec");
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_i64()),
        (Some("running"), Some(pid.into())),
        "{st}"
    );
    let o = c.exec(
        "exec",
        "e1",
        &[],
        &[
            "sh",
            "-c",
            "echo in; cat /proc/1/cmdline | tr '\\0' ' '; exit 7",
        ],
    );
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(7), "in\nsleep 1000 "),
        "{o}"
    );
    let o = c.exec(
        "exec",
        "e2",
        &["--user", "1000", "--cwd", "/tmp"],
        &["sh", "-c", "echo $(id -u):$(pwd)"],
    );
    assert_eq!(o.stdout, "1000:/tmp\n", "{o}");
    let fifo = s(&c.scratch.path("fifo"));
    let (out, code) = engines::run_on_pty(
        &c.ctr,
        &[
            "--address",
            &c.sock,
            "task",
            "exec",
            "--fifo-dir",
            &fifo,
            "-t",
            "--exec-id",
            "e3",
            "exec",
            "sh",
            "-c",
            "tty; exit 4",
        ],
        engines::CALL,
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    // task ps lists the container's processes (runtime `ps --format json`).
    let ps = c.ctr(&["task", "ps", "exec"]);
    ps.ok();
    assert!(
        ps.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );
    c.remove("exec");
}

fn pause_resume(c: &Containerd) {
    c.detached("pause", &[], &["sleep", "1000"]);
    c.ctr(&["task", "pause", "pause"]).ok();
    assert_eq!(c.task_status("pause"), "PAUSED");
    assert_eq!(c.runtime_state("pause")["status"], "paused");
    let freezer =
        engines::host_cgroup_file(&c.cgroup("pause"), "freezer/freezer.state", "cgroup.freeze");
    if let Some(f) = freezer {
        let v = fs::read_to_string(&f).unwrap_or_default();
        assert!(
            v.trim() == "FROZEN" || v.trim() == "1",
            "{}: {v}",
            f.display()
        );
    }
    c.ctr(&["task", "resume", "pause"]).ok();
    assert_eq!(c.task_status("pause"), "RUNNING");
    assert_eq!(c.runtime_state("pause")["status"], "running");
    c.remove("pause");
}

fn kill_and_kill_all(c: &Containerd) {
    let script = "trap 'echo usr1 > /tmp/got' USR1; sleep 1000 & while :; do sleep 0.1; done";
    c.detached("kill", &[], &["sh", "-c", script]);
    c.ctr(&["task", "kill", "-s", "SIGUSR1", "kill"]).ok();
    engines::wait_until("the USR1 trap", Duration::from_secs(20), || {
        (c.exec("kill", "k1", &[], &["cat", "/tmp/got"]).stdout == "usr1\n").then_some(())
    });
    // --all reaches the background sleep too: the cgroup empties.
    c.ctr(&["task", "kill", "--all", "-s", "SIGKILL", "kill"])
        .ok();
    engines::wait_until("every process to die", Duration::from_secs(20), || {
        engines::cgroup_procs(&c.cgroup("kill"))
            .is_empty()
            .then_some(())
    });
    engines::wait_until("the task to stop", Duration::from_secs(20), || {
        (c.task_status("kill") == "STOPPED").then_some(())
    });
    c.ctr(&["task", "delete", "kill"]).ok();
    // containerd's clean-up deletes again with --force: a gone container is fine.
    let o = c.scratch.run(
        &common::runtime(),
        &[
            "--root",
            &s(&c.runc_root.join("default")),
            "delete",
            "--force",
            "kill",
        ],
        |_| {},
    );
    assert!(o.success(), "{o}");
    c.ctr(&["containers", "rm", "kill"]).ok();
}

fn delete_force_running(c: &Containerd) {
    let pid = c.detached("delf", &[], &["sleep", "1000"]);
    c.ctr(&["task", "delete", "-f", "delf"]).ok();
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "delete -f left the workload"
    );
    assert!(
        !c.runc_root.join("default/delf").exists(),
        "runtime state left"
    );
    c.ctr(&["containers", "rm", "delf"]).ok();
}

fn run_tty(c: &Containerd) {
    let mut args = vec![
        "--address".to_string(),
        c.sock.clone(),
        "run".into(),
        "--rm".into(),
        "-t".into(),
    ];
    args.extend(c.run_flags("tty"));
    args.extend([IMAGE, "tty", "sh", "-c", "tty; exit 5"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, code) = engines::run_on_pty(&c.ctr, &args, engines::CALL);
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
}

fn memory_and_cpus(c: &Containerd) {
    c.detached(
        "res",
        &["--memory-limit", "33554432", "--cpus", "0.5"],
        &["sleep", "1000"],
    );
    let mem = c.host_cgroup("res", "memory/memory.limit_in_bytes", "memory.max");
    assert_eq!(engines::parse_limit(&mem), 32 << 20);
    let cpu = c.host_cgroup("res", "cpu/cpu.cfs_quota_us", "cpu.max");
    assert!(cpu.starts_with("50000"), "{cpu}");
    c.remove("res");
}

fn read_only(c: &Containerd) {
    let out = c.sh_ok(
        "ro",
        &["--read-only"],
        "touch /x 2>&1; echo rc=$?; touch /dev/shm/y && echo shm-ok",
    );
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
    assert!(out.contains("shm-ok"), "{out}");
}

fn privileged(c: &Containerd) {
    let out = c.sh_ok(
        "priv",
        &["--privileged"],
        "cat /proc/self/status; ls /dev | wc -l",
    );
    // containerd asks for its own bounding set.
    let host = fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert_eq!(
        engines::cap_field(&out, "CapEff"),
        engines::cap_field(&host, "CapBnd"),
        "{out}"
    );
    let ndev: usize = out
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("device count");
    assert!(ndev > 20, "only {ndev} entries in /dev: {out}");
}

fn seccomp(c: &Containerd) {
    let out = c.sh_ok(
        "sc1",
        &["--seccomp"],
        "grep Seccomp: /proc/self/status; unshare -U true 2>&1; echo rc=$?",
    );
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("rc=1"),
        "{out}"
    );
    let out = c.sh_ok("sc2", &[], "grep Seccomp: /proc/self/status");
    assert!(out.contains("Seccomp:\t0"), "{out}");
}

/// kubelet's calls through the CRI, with a pod whose RuntimeClass handler is
/// "capsa": the runtime entry in config.toml names the binary.
fn kubernetes_runtime_class(c: &Containerd) {
    let python = Path::new("/usr/bin/python3");
    let probe = c.scratch.run(python, &["-c", "import grpc"], |_| {});
    assert!(
        probe.success(),
        "the CRI client needs python3-grpcio (apt-get install python3-grpcio): {probe}"
    );
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/cri.py");
    let cri = |args: &[&str]| -> Output {
        let mut full = vec![s(&client), c.sock.clone()];
        full.extend(args.iter().map(|a| a.to_string()));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        c.scratch.run(python, &full, |_| {})
    };
    let parent = c.scratch.cgroup_parent.clone();
    let pod = cri(&["runp", "pod1", "uid-1", "capsa", &parent]);
    pod.ok();
    let pod = pod.stdout.trim().to_owned();
    let cid = cri(&[
        "create",
        &pod,
        "app",
        "uid-1",
        &parent,
        IMAGE,
        r#"["sleep","1000"]"#,
        "67108864",
    ]);
    cid.ok();
    let cid = cid.stdout.trim().to_owned();
    cri(&["start", &cid]).ok();
    let k8s_root = c.cri_root.join("k8s.io");
    // Both the sandbox and the app container are the runtime under test's.
    for id in [&pod, &cid] {
        let st = engines::runtime_state(&c.scratch, &k8s_root, id);
        assert_eq!(st["status"], "running", "{st}");
    }
    let o = cri(&[
        "exec",
        &cid,
        r#"["sh","-c","echo from-exec; cat /proc/self/cgroup; exit 4"]"#,
    ]);
    o.ok();
    let res: serde_json::Value = serde_json::from_str(&o.stdout).expect("exec JSON");
    assert_eq!(res["exit_code"], 4, "{res}");
    let stdout = res["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.starts_with("from-exec\n") && stdout.contains(&cid),
        "{res}"
    );
    let mem = engines::host_cgroup_file(
        &format!("{parent}/{cid}"),
        "memory/memory.limit_in_bytes",
        "memory.max",
    )
    .map(|p| fs::read_to_string(p).unwrap_or_default())
    .unwrap_or_default();
    assert_eq!(engines::parse_limit(&mem), 64 << 20);
    cri(&["stop", &cid]).ok();
    cri(&["rm", &cid]).ok();
    cri(&["stopp", &pod]).ok();
    cri(&["rmp", &pod]).ok();
    for id in [&pod, &cid] {
        assert!(!k8s_root.join(id).exists(), "runtime state of {id} left");
    }
}

/// containerd configured with SystemdCgroup passes --systemd-cgroup: on this
/// host, not booted with systemd, capsa refuses it, and the user sees why
/// and what to configure instead.
fn systemd_cgroup_is_refused_clearly(c: &Containerd) {
    if common::skip_unless_capsa("capsa's own refusal of --systemd-cgroup") {
        return;
    }
    let o = c.run("--rm", "sd", &["--runc-systemd-cgroup"], &["true"]);
    assert!(!o.success(), "{o}");
    assert!(
        o.stderr.contains("--systemd-cgroup") && o.stderr.contains("SystemdCgroup = false"),
        "{o}"
    );
    let _ = c.ctr(&["containers", "rm", "sd"]);
}

fn main() -> ExitCode {
    let tests: &[Test<Containerd>] = &[
        ("run_rm_output_and_exit_codes", run_rm_output_and_exit_codes),
        ("detached_exec_ps", detached_exec_ps),
        ("pause_resume", pause_resume),
        ("kill_and_kill_all", kill_and_kill_all),
        ("delete_force_running", delete_force_running),
        ("run_tty", run_tty),
        ("memory_and_cpus", memory_and_cpus),
        ("read_only", read_only),
        ("privileged", privileged),
        ("seccomp", seccomp),
        ("kubernetes_runtime_class", kubernetes_runtime_class),
        (
            "systemd_cgroup_is_refused_clearly",
            systemd_cgroup_is_refused_clearly,
        ),
    ];
    engines::run_suite(tests)
}

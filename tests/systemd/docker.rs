//! Docker 20.10 with the systemd cgroup driver (`"exec-opts": ["native.cgroupdriver=systemd"]`
//! in daemon.json) runs the same container on the runtime under test (a `runtimes` entry
//! naming its path) and on runc (Docker's default runtime), side by side: dockerd's
//! containerd shim passes `--systemd-cgroup` and cgroupsPath `system.slice:docker:<id>`, the
//! container lands in `/system.slice/docker-<id>.scope` with `--memory`, `--cpus` and
//! `--pids-limit` as unit properties and in the kernel's files, `docker exec` joins the
//! scope, and `docker stop` + `rm` leave no unit and no cgroup. Both runtimes must show the
//! same. The daemon is private (data root, exec root, socket) and drives the test's private
//! containerd (`--containerd`, namespace moby: under TCG, dockerd gives up waiting for a
//! containerd of its own); the image is a local busybox tar; no network. Run from
//! containerd.rs's test, after the CRI checks, on the same containerd.

use super::engines::{self, Daemon, Scratch, s};
use super::*;

const IMAGE: &str = "capsa-test/busybox:1";

pub(super) struct Docker {
    scratch: Scratch,
    daemon: Daemon,
    cli: PathBuf,
    host: String,
    /// Docker's `--root` for runc-compatible runtimes' state.
    runtime_root: PathBuf,
}

impl Docker {
    /// A dockerd on containerd socket `containerd`; None when Docker is not installed.
    fn start(containerd: &str, dog: &Watchdog) -> Option<Docker> {
        let dockerd = engines::which("dockerd")?;
        let cli = engines::which("/usr/bin/docker")?;
        let scratch = Scratch::new("sddocker");
        let data = scratch.mkdir("data");
        let exec_root = scratch.mkdir("exec");
        scratch.mkdir("cli-config");
        let config = json!({
            "exec-opts": ["native.cgroupdriver=systemd"],
            "iptables": false,
            "ip-forward": false,
            "ip-masq": false,
            "bridge": "none",
            "runtimes": {"under-test": {"path": s(&runtime())}},
            "log-level": "info",
        });
        let config_path = scratch.write_file("daemon.json", &config.to_string());
        let host = format!("unix://{}", s(&scratch.path("docker.sock")));
        let daemon = Daemon::spawn(
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
                "--containerd",
                containerd,
                "-H",
                &host,
            ],
            scratch.path("dockerd.log"),
        );
        dog.watch(&daemon.log);
        let mut d = Docker {
            scratch,
            daemon,
            cli,
            host,
            runtime_root: exec_root.join("runtime-runc/moby"),
        };
        // Under TCG, dockerd and its containerd take a while to come up.
        let ready = {
            let (scratch, cli, host) = (&d.scratch, &d.cli, &d.host);
            d.daemon.wait_ready(Duration::from_secs(240), || {
                Docker::cli_run(scratch, cli, host, &["version"]).success()
            })
        };
        if let Err(e) = ready {
            panic!("dockerd did not start: {e}");
        }
        let info = d.docker(&["info", "--format", "{{.CgroupDriver}}"]);
        assert_eq!(info.ok().stdout.trim(), "systemd", "{info}");
        let tar = d.scratch.busybox_tar();
        d.docker(&["import", "--change", "ENV PATH=/bin", &s(&tar), IMAGE])
            .ok();
        Some(d)
    }

    fn cli_run(scratch: &Scratch, cli: &Path, host: &str, args: &[&str]) -> Output {
        let mut full = vec!["-H", host];
        full.extend_from_slice(args);
        let config = scratch.path("cli-config");
        scratch.run_limit(cli, &full, super::containerd::SLOW, |c| {
            c.env("DOCKER_CONFIG", &config);
        })
    }

    fn docker(&self, args: &[&str]) -> Output {
        Docker::cli_run(&self.scratch, &self.cli, &self.host, args)
    }

    #[track_caller]
    fn inspect(&self, name: &str, format: &str) -> String {
        let o = self.docker(&["inspect", "-f", format, name]);
        o.ok().stdout.trim().to_owned()
    }
}

impl Drop for Docker {
    /// Best effort, and quick (as containerd.rs's): the sweep kills whatever is left.
    fn drop(&mut self) {
        let quick = |args: &[&str]| {
            let config = self.scratch.path("cli-config");
            let mut full = vec!["-H", self.host.as_str()];
            full.extend_from_slice(args);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.scratch
                    .run_limit(&self.cli, &full, Duration::from_secs(30), |c| {
                        c.env("DOCKER_CONFIG", &config);
                    })
            }))
            .ok()
        };
        if let Some(ids) = quick(&["ps", "-aq"]) {
            for id in ids.stdout.split_whitespace() {
                quick(&["rm", "-f", id]);
            }
        }
        self.daemon.stop(Duration::from_secs(30));
        self.scratch.sweep();
    }
}

/// One container's life on Docker runtime `rt`, checked against the expected values;
/// returns what was observed (the container id written as `<ID>`) for the side-by-side
/// comparison.
fn container_on(d: &Docker, rt: &str) -> Vec<(String, String)> {
    let name = format!("sd-{rt}");
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--runtime",
        rt,
        "--network",
        "none",
        // The guest kernel has AppArmor on but no apparmor_parser is installed, so
        // dockerd cannot load its docker-default profile (the same for both runtimes).
        "--security-opt",
        "apparmor=unconfined",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        IMAGE,
        "sleep",
        "1000",
    ]);
    o.ok();
    let id = d.inspect(&name, "{{.Id}}");
    let pid: u32 = d
        .inspect(&name, "{{.State.Pid}}")
        .parse()
        .expect("State.Pid");
    // The runtime named is the one that made it: its own state loads.
    let made_by = if rt == "runc" {
        PathBuf::from("/usr/sbin/runc")
    } else {
        runtime()
    };
    let st = d.scratch.run(
        &made_by,
        &["--root", &s(&d.runtime_root), "state", &id],
        |_| {},
    );
    assert!(
        st.success(),
        "{} has no state for {id}: {st}",
        made_by.display()
    );

    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| {
        progress(&format!("  docker {rt}: {what}"));
        seen.push((what.to_owned(), v.replace(&id, "<ID>")))
    };
    let unit = format!("docker-{id}.scope");
    let cg = proc_cgroup(pid);
    assert_eq!(
        cg,
        format!("/system.slice/{unit}"),
        "{rt}: the init's cgroup"
    );
    note("init cgroup", cg.clone());
    let mem_prop = if v2() { "MemoryMax" } else { "MemoryLimit" };
    let props = show(
        &unit,
        &[
            "ActiveState",
            "Slice",
            "ControlGroup",
            "Delegate",
            mem_prop,
            "TasksMax",
            "CPUQuotaPerSecUSec",
        ],
    );
    let want = |k: &str, v: &str| {
        assert_eq!(
            props.get(k).map(String::as_str),
            Some(v),
            "{rt}: {unit} {k}: {props:#?}"
        );
    };
    want("ActiveState", "active");
    want("Slice", "system.slice");
    want("ControlGroup", &format!("/system.slice/{unit}"));
    want(mem_prop, "67108864");
    want("TasksMax", "50");
    want("CPUQuotaPerSecUSec", "500ms");
    let mut keys: Vec<_> = props.keys().cloned().collect();
    keys.sort();
    for k in keys {
        note(&format!("unit {k}"), props[&k].clone());
    }
    let files: Vec<(&str, &str, &str)> = if v2() {
        vec![
            ("", "memory.max", "67108864"),
            ("", "pids.max", "50"),
            ("", "cpu.max", "50000 100000"),
        ]
    } else {
        vec![
            ("memory", "memory.limit_in_bytes", "67108864"),
            ("pids", "pids.max", "50"),
            ("cpu,cpuacct", "cpu.cfs_quota_us", "50000"),
            ("cpu,cpuacct", "cpu.cfs_period_us", "100000"),
        ]
    };
    for (ctrl, file, value) in files {
        let got = read_cg(ctrl, &cg, file);
        assert_eq!(got, value, "{rt}: {file} of {cg}");
        note(file, got);
    }

    // exec: runs, returns its status, and its process joins the container's scope.
    let o = d.docker(&["exec", &name, "sh", "-c", "echo exec-ok; exit 3"]);
    assert_eq!((o.code, o.stdout.as_str()), (Some(3), "exec-ok\n"), "{o}");
    note("exec", format!("{:?} {}", o.code, o.stdout.trim()));
    d.docker(&["exec", "-d", &name, "sleep", "999"]).ok();
    let procs_ctrl = if v2() { "" } else { "pids" };
    eventually(&format!("{rt}: the exec'd sleep in {cg}"), || {
        read_cg(procs_ctrl, &cg, "cgroup.procs").lines().count() == 2
    });
    note("processes in the scope after exec -d", "2".into());

    d.docker(&["stop", "-t", "1", &name]).ok();
    d.docker(&["rm", &name]).ok();
    eventually(&format!("{rt}: {unit} is gone after docker rm"), || {
        prop(&unit, "LoadState") == "not-found"
    });
    assert_no_unit_no_cgroup(&id);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "{rt}: the workload survived docker rm"
    );
    assert!(
        !d.runtime_root.join(&id).exists(),
        "{rt}: the runtime's state survived docker rm"
    );
    note("after stop + rm", "no unit, no cgroup, no state".into());
    seen
}

/// The Docker half of containerd.rs's test, on its containerd.
pub(super) fn docker_with_the_systemd_cgroup_driver(containerd: &str, dog: &Watchdog) {
    let Some(d) = Docker::start(containerd, dog) else {
        skip("Docker (docker.io: dockerd, /usr/bin/docker) not installed");
        return;
    };
    let ours = container_on(&d, "under-test");
    let runc = container_on(&d, "runc");
    assert_eq!(
        ours,
        runc,
        "{} and runc differ under Docker's systemd driver",
        runtime().display()
    );
}

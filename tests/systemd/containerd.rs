//! containerd 1.6 with the runc shim and `SystemdCgroup = true` runs its containers on the
//! runtime under test and on runc, side by side: kubelet's path through the CRI
//! (tests/engines/cri.py plays kubelet with `cgroupDriver: systemd`: a pod whose cgroup
//! parent is `kubepods-besteffort-pod<uid>.slice`, the RuntimeClass handler selecting the
//! runtime entry whose options name `BinaryName`), and plain `ctr run
//! --runc-systemd-cgroup`. Each container must land in its scope below the expanded
//! slices, exec must work, and stop + remove must leave no unit and no cgroup (with
//! SD_ENGINES_RUNC=1 in VM_ENV, the same on runc, and both must agree). The daemon
//! is private (root, state, sockets, config.toml); the images come from a local OCI archive.
//! Docker's half (docker.rs) runs last on the same containerd: one daemon start less,
//! which under TCG is most of the cost.

use super::engines::{self, Daemon, Scratch, s};
use super::*;

const IMAGE: &str = "capsa.test/busybox:1";
const PAUSE: &str = "capsa.test/pause:1";
const RUNC: &str = "/usr/sbin/runc";
/// The limit of one engine command here (a hang, not slowness, must fail it).
pub(super) const SLOW: Duration = Duration::from_secs(300);

struct Containerd {
    scratch: Scratch,
    daemon: Daemon,
    ctr: PathBuf,
    sock: String,
}

impl Containerd {
    /// None when containerd is not installed.
    fn start() -> Option<Containerd> {
        let containerd = engines::which("containerd")?;
        let ctr = engines::which("ctr")?;
        engines::which("containerd-shim-runc-v2")?;
        let scratch = Scratch::new("sdcontainerd");
        let d = |n: &str| s(&scratch.mkdir(n));
        let sock = s(&scratch.path("containerd.sock"));
        // Two CRI runtime entries that differ only in the binary: "under-test" (what a
        // RuntimeClass with that handler selects) and "runc".
        let mut runtimes = String::new();
        for (handler, binary) in [("under-test", s(&runtime())), ("runc", RUNC.to_owned())] {
            runtimes.push_str(&format!(
                r#"  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}.options]
      BinaryName = "{binary}"
      Root = "{root}"
      SystemdCgroup = true
"#,
                root = d(&format!("cri-root-{handler}")),
            ));
        }
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
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
{runtimes}"#,
            root = d("root"),
            state = d("state"),
            opt = d("opt"),
            cni_bin = d("cni-bin"),
            cni_conf = d("cni-conf"),
        );
        let config_path = scratch.write_file("config.toml", &config);
        scratch.mkdir("fifo");
        let daemon = Daemon::spawn(
            "containerd",
            &containerd,
            &["--config", &s(&config_path)],
            scratch.path("containerd.log"),
        );
        let mut c = Containerd {
            scratch,
            daemon,
            ctr,
            sock,
        };
        let ready = {
            let (scratch, ctr, sock) = (&c.scratch, &c.ctr, &c.sock);
            c.daemon.wait_ready(Duration::from_secs(180), || {
                scratch
                    .run(ctr, &["--address", sock, "version"], |_| {})
                    .success()
            })
        };
        if let Err(e) = ready {
            panic!("containerd did not start: {e}");
        }
        let archive = engines::oci_archive(
            &c.scratch,
            &[(IMAGE, &["sh"]), (PAUSE, &["sleep", "1000000"])],
        );
        for ns in ["default", "k8s.io"] {
            c.ctr_ns(ns, &["images", "import", &s(&archive)]).ok();
        }
        Some(c)
    }

    fn ctr_ns(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["--address", &self.sock, "-n", ns];
        full.extend_from_slice(args);
        self.scratch.run_limit(&self.ctr, &full, SLOW, |_| {})
    }

    fn cri(&self, args: &[&str]) -> Output {
        let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/cri.py");
        let mut full = vec![s(&client), self.sock.clone()];
        full.extend(args.iter().map(|a| a.to_string()));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        // Under TCG on a loaded host a StopContainer took 85 s: far above the engines
        // lane's limits, which are for hangs, not for slowness.
        self.scratch
            .run_limit(Path::new("/usr/bin/python3"), &full, SLOW, |c| {
                c.env("CRI_DEADLINE", "280");
            })
    }

    /// The pid of container `id` from `binary`'s state under `root`.
    #[track_caller]
    fn pid(&self, binary: &Path, root: &Path, id: &str) -> u32 {
        let o = self
            .scratch
            .run(binary, &["--root", &s(root), "state", id], |_| {});
        assert!(
            o.success(),
            "{} has no state for {id}: {o}",
            binary.display()
        );
        let v: Value = serde_json::from_str(&o.stdout).expect("state JSON");
        assert_eq!(v["status"], "running", "{v}");
        v["pid"].as_u64().expect("state pid") as u32
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

/// kubelet's calls for one pod on handler `handler` (binary `binary`); returns what was
/// observed (ids written as `<POD>`/`<CID>`, the pod uid as `<UID>`).
fn cri_pod(c: &Containerd, handler: &str, binary: &Path, n: u32) -> Vec<(String, String)> {
    // A pod uid as the API server makes them; kubelet's systemd driver writes its dashes
    // as underscores in the slice name.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let uid = format!(
        "{:08x}-cafe-4000-8000-{:012x}",
        std::process::id(),
        nanos + n
    );
    let pod_slice = format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_"));
    let slice_dir = format!("/kubepods.slice/kubepods-besteffort.slice/{pod_slice}");
    let root = c
        .scratch
        .path(&format!("cri-root-{handler}"))
        .join("k8s.io");

    let pod = c.cri(&["runp", &format!("pod-{handler}"), &uid, handler, &pod_slice]);
    let pod = pod.ok().stdout.trim().to_owned();
    let cid = c.cri(&[
        "create",
        &pod,
        "app",
        &uid,
        &pod_slice,
        IMAGE,
        r#"["sleep","1000"]"#,
        "67108864",
    ]);
    let cid = cid.ok().stdout.trim().to_owned();
    c.cri(&["start", &cid]).ok();

    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| {
        progress(&format!("  {handler}: {what}"));
        seen.push((
            what.to_owned(),
            v.replace(&cid, "<CID>")
                .replace(&pod, "<POD>")
                .replace(&uid.replace('-', "_"), "<UID>"),
        ))
    };
    for (what, id) in [("sandbox", &pod), ("container", &cid)] {
        let pid = c.pid(binary, &root, id);
        let unit = format!("cri-containerd-{id}.scope");
        let cg = proc_cgroup(pid);
        assert_eq!(
            cg,
            format!("{slice_dir}/{unit}"),
            "{handler}: the {what}'s cgroup"
        );
        note(&format!("{what} cgroup"), cg);
        let props = show(&unit, &["ActiveState", "Slice", "Delegate"]);
        assert_eq!(props["ActiveState"], "active", "{handler}: {props:#?}");
        assert_eq!(props["Slice"], pod_slice, "{handler}: {props:#?}");
        let mut props: Vec<_> = props.into_iter().collect();
        props.sort();
        note(&format!("{what} unit"), format!("{props:?}"));
    }
    let unit = format!("cri-containerd-{cid}.scope");
    let cg = format!("{slice_dir}/{unit}");
    let (mem_prop, mem_ctrl, mem_file) = if v2() {
        ("MemoryMax", "", "memory.max")
    } else {
        ("MemoryLimit", "memory", "memory.limit_in_bytes")
    };
    assert_eq!(prop(&unit, mem_prop), "67108864", "{handler}: {unit}");
    assert_eq!(read_cg(mem_ctrl, &cg, mem_file), "67108864", "{handler}");
    note("container memory limit", "67108864".into());

    let o = c.cri(&["exec", &cid, r#"["sh","-c","echo from-exec; exit 4"]"#]);
    let res: Value = serde_json::from_str(&o.ok().stdout).expect("exec JSON");
    assert_eq!(res["exit_code"], 4, "{handler}: {res}");
    assert_eq!(res["stdout"], "from-exec\n", "{handler}: {res}");
    note("exec", res.to_string());

    let t0 = Instant::now();
    c.cri(&["stop", &cid]).ok();
    progress(&format!(
        "{handler}: StopContainer took {:.1?}",
        t0.elapsed()
    ));
    c.cri(&["rm", &cid]).ok();
    c.cri(&["stopp", &pod]).ok();
    c.cri(&["rmp", &pod]).ok();
    for id in [&pod, &cid] {
        let unit = format!("cri-containerd-{id}.scope");
        eventually(&format!("{handler}: {unit} is gone"), || {
            prop(&unit, "LoadState") == "not-found"
        });
        assert_no_unit_no_cgroup(id);
        assert!(
            !root.join(id).exists(),
            "{handler}: runtime state of {id} left"
        );
    }
    note("after stop + remove", "no unit, no cgroup, no state".into());
    // kubelet removes the pod's slice once the pod is gone; so do we.
    let _ = Command::new("systemctl")
        .args(["stop", &pod_slice])
        .output();
    seen
}

/// `ctr run --runc-systemd-cgroup` with cgroupsPath `system.slice:ctr:<id>` on `binary`.
fn ctr_run(c: &Containerd, binary: &Path, id: &str) -> Vec<(String, String)> {
    let root = c.scratch.mkdir(&format!("ctr-root-{id}"));
    let cgroup = format!("system.slice:ctr:{id}");
    c.ctr_ns(
        "default",
        &[
            "run",
            "-d",
            "--runc-binary",
            &s(binary),
            "--runc-root",
            &s(&root),
            "--runc-systemd-cgroup",
            "--cgroup",
            &cgroup,
            "--fifo-dir",
            &s(&c.scratch.path("fifo")),
            "--memory-limit",
            "33554432",
            IMAGE,
            id,
            "sleep",
            "1000",
        ],
    )
    .ok();
    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| {
        progress(&format!("  ctr {id}: {what}"));
        seen.push((what.to_owned(), v.replace(id, "<ID>")))
    };
    let pid = c.pid(binary, &root.join("default"), id);
    let unit = format!("ctr-{id}.scope");
    let cg = proc_cgroup(pid);
    assert_eq!(cg, format!("/system.slice/{unit}"), "{}", binary.display());
    note("cgroup", cg);
    let mem_prop = if v2() { "MemoryMax" } else { "MemoryLimit" };
    assert_eq!(prop(&unit, mem_prop), "33554432", "{unit}");
    note("memory limit", "33554432".into());
    let fifo = s(&c.scratch.path("fifo"));
    let o = c.ctr_ns(
        "default",
        &[
            "task",
            "exec",
            "--fifo-dir",
            &fifo,
            "--exec-id",
            "e1",
            id,
            "sh",
            "-c",
            "echo in; exit 6",
        ],
    );
    assert_eq!((o.code, o.stdout.as_str()), (Some(6), "in\n"), "{o}");
    note("exec", format!("{:?} {}", o.code, o.stdout.trim()));
    let _ = c.ctr_ns("default", &["task", "kill", "-s", "SIGKILL", id]);
    c.ctr_ns("default", &["task", "delete", "-f", id]).ok();
    c.ctr_ns("default", &["containers", "rm", id]).ok();
    eventually(&format!("{unit} is gone"), || {
        prop(&unit, "LoadState") == "not-found"
    });
    assert_no_unit_no_cgroup(id);
    note("after delete", "no unit, no cgroup".into());
    seen
}

#[test]
fn engines_with_the_systemd_cgroup_driver() {
    if skip_without_systemd() {
        return;
    }
    // Opt-in for now: passed in 3 of 4 boots (2.5-5 min), but one CI boot (pure v2)
    // hung past 24 min inside the guest, cause not yet found (issue 12 stays open).
    // CAPSA_SD_ENGINES=1 scripts/test.sh runs it (scripts/test.sh forwards the variable).
    if std::env::var_os("CAPSA_SD_ENGINES").is_none_or(|v| v != "1") {
        skip(
            "Docker/containerd on the systemd driver: opt-in (CAPSA_SD_ENGINES=1) until an intermittent hang in one CI boot is understood",
        );
        return;
    }
    // A hang fails with the guest's state instead of running into the VM's limit.
    let limit = std::env::var("SD_ENGINES_WATCHDOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    let dog = Watchdog::start("systemd_engines", Duration::from_secs(limit));
    let t0 = Instant::now();
    let lap = |what: &str| progress(&format!("{what}: done at {:.1?}", t0.elapsed()));
    let Some(c) = Containerd::start() else {
        skip("containerd (ctr, containerd-shim-runc-v2) not installed");
        return;
    };
    dog.watch(&c.daemon.log);
    lap("containerd started");
    // Under TCG each CRI pod costs 1.5-3.5 min: the runtime under test alone by default;
    // SD_ENGINES_RUNC=1 runs runc the same way and compares (identical in both modes).
    let with_runc = std::env::var_os("SD_ENGINES_RUNC").is_some_and(|v| v == "1");
    let tag = std::process::id();
    let has_grpc = Command::new("/usr/bin/python3")
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_grpc {
        skip("the CRI client needs python3-grpcio (apt-get install python3-grpcio)");
    } else {
        let ours = cri_pod(&c, "under-test", &runtime(), 1);
        lap("CRI pod on the runtime under test");
        if with_runc {
            let runc = cri_pod(&c, "runc", Path::new(RUNC), 2);
            lap("CRI pod on runc");
            assert_eq!(ours, runc, "the runtime under test and runc differ (CRI)");
        }
    }
    let ours = ctr_run(&c, &runtime(), &format!("sdctr-a-{tag}"));
    lap("ctr run --runc-systemd-cgroup");
    if with_runc {
        let runc = ctr_run(&c, Path::new(RUNC), &format!("sdctr-b-{tag}"));
        assert_eq!(
            ours, runc,
            "the runtime under test and runc differ (ctr run)"
        );
    }
    super::docker::docker_with_the_systemd_cgroup_driver(&c.sock, &dog);
    lap("Docker, the runtime under test and runc");
}

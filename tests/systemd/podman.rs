//! podman 4.3 with its systemd default (`cgroup_manager = "systemd"`) runs a container on
//! the runtime under test: podman passes `--systemd-cgroup` and cgroupsPath
//! `machine.slice:libpod:<id>`, the container lands in `libpod-<id>.scope` with podman's
//! limits as unit properties, exec works, and `podman rm` leaves no unit. Storage, run
//! root and config are private to the test; the image is a local busybox archive.

use super::*;

/// `podman` with the test's private storage and config and the systemd cgroup manager.
struct Podman {
    ctx: Ctx,
    global: Vec<String>,
}

impl Podman {
    fn new() -> Option<Podman> {
        let podman = ["/usr/bin/podman", "/usr/sbin/conmon", "/usr/bin/conmon"];
        if !Path::new(podman[0]).exists()
            || !(Path::new(podman[1]).exists() || Path::new(podman[2]).exists())
        {
            return None;
        }
        let ctx = Ctx::new("sdpodman");
        let d = |n: &str| {
            let p = ctx.scratch(n);
            fs::create_dir_all(&p).expect("mkdir");
            p.to_str().expect("utf-8").to_owned()
        };
        let runtime_root = d("capsa-root");
        let wrapper = ctx.scratch("runtime");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --root {runtime_root} \"$@\"\n",
                runtime().display()
            ),
        )
        .expect("write the runtime wrapper");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
        let conf = ctx.scratch("containers.conf");
        fs::write(
            &conf,
            format!(
                "[containers]\nnetns = \"none\"\n\n[engine]\nruntime = \"capsa\"\n\
                 runtime_supports_json = [\"crun\", \"runc\", \"capsa\"]\n\
                 cgroup_manager = \"systemd\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{}\"\nstatic_dir = \"{}\"\nvolume_path = \"{}\"\n\n\
                 [engine.runtimes]\ncapsa = [\"{}\"]\n\n[network]\nnetwork_config_dir = \"{}\"\n",
                ctx.scratch("events.log").display(),
                d("static"),
                d("volumes"),
                wrapper.display(),
                d("net"),
            ),
        )
        .expect("write containers.conf");
        let storage = ctx.scratch("storage.conf");
        fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                d("runroot"),
                d("storage")
            ),
        )
        .expect("write storage.conf");
        let global = vec![
            "--root".into(),
            d("storage"),
            "--runroot".into(),
            d("runroot"),
            "--tmpdir".into(),
            d("tmp"),
            "--storage-driver".into(),
            "overlay".into(),
            "--cgroup-manager".into(),
            "systemd".into(),
            "--events-backend".into(),
            "file".into(),
        ];
        let p = Podman { ctx, global };
        let rootfs = p.ctx.scratch("image-rootfs");
        build_rootfs(&rootfs);
        let tar = p.ctx.scratch("busybox.tar");
        let o = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("run tar");
        assert!(o.status.success(), "tar the rootfs");
        let tar = tar.to_str().expect("utf-8").to_owned();
        p.run(&["import", "--change", "ENV PATH=/bin", &tar, IMAGE])
            .ok();
        Some(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = self.global.iter().map(String::as_str).collect();
        full.extend_from_slice(args);
        let conf = self.ctx.scratch("containers.conf");
        let storage = self.ctx.scratch("storage.conf");
        run_cmd(
            Path::new("/usr/bin/podman"),
            &full,
            &self.ctx.scratch("out"),
            Duration::from_secs(120),
            |c| {
                c.env("CONTAINERS_CONF", &conf)
                    .env("CONTAINERS_STORAGE_CONF", &storage);
            },
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--force", "--all", "--time", "0"]);
    }
}

const IMAGE: &str = "localhost/capsa-test/busybox:1";

#[test]
fn podman_with_the_systemd_cgroup_manager() {
    if skip_without_systemd() {
        return;
    }
    let Some(p) = Podman::new() else {
        skip("podman or conmon not installed");
        return;
    };
    let o = p.run(&[
        "run",
        "-d",
        "--name",
        "sdpod",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        IMAGE,
        "sleep",
        "1000",
    ]);
    o.ok();
    let o = p.run(&["inspect", "--format", "{{.State.Pid}} {{.Id}}", "sdpod"]);
    let text = o.ok().stdout.clone();
    let mut it = text.split_whitespace();
    let pid: u32 = it.next().and_then(|s| s.parse().ok()).expect("pid");
    let cid = it.next().expect("container id").to_owned();
    let unit = format!("libpod-{cid}.scope");
    let cg = proc_cgroup(pid);
    assert!(
        cg.starts_with(&format!("/machine.slice/{unit}")),
        "the container's cgroup {cg}, expected /machine.slice/{unit}"
    );
    let props = show(
        &unit,
        &["ActiveState", "MemoryMax", "MemoryLimit", "TasksMax"],
    );
    assert_eq!(props["ActiveState"], "active", "{props:#?}");
    let mem = if v2() { "MemoryMax" } else { "MemoryLimit" };
    assert_eq!(props[mem], "67108864", "{props:#?}");
    assert_eq!(props["TasksMax"], "50", "{props:#?}");
    let o = p.run(&["exec", "sdpod", "echo", "exec-ok"]);
    assert!(o.ok().stdout.contains("exec-ok"), "{o}");
    p.run(&["stop", "--time", "1", "sdpod"]).ok();
    p.run(&["rm", "sdpod"]).ok();
    eventually("the unit is gone after podman rm", || {
        prop(&unit, "LoadState") == "not-found"
    });
    assert!(units_naming(&cid).is_empty(), "{:?}", units_naming(&cid));
    assert!(cgroup_dirs_naming(&cid).is_empty());
}

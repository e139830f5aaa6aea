//! The filesystem as the workload sees it: mounts, readonly root, masked and readonly
//! paths, /dev contents.

mod common;

use common::*;
use serde_json::json;
use std::fs;

/// Mounts inside the container: (mount point, fstype, per-mount opts, super opts).
fn mounts_inside(c: &mut Ctx) -> Vec<(String, String, String, String)> {
    c.args(&["cat", "/proc/self/mountinfo"]);
    let o = c.run();
    o.ok();
    parse_mountinfo(&o.stdout)
}

fn find<'a>(
    m: &'a [(String, String, String, String)],
    point: &str,
) -> &'a (String, String, String, String) {
    // The last entry for a mount point is the one on top.
    m.iter()
        .rev()
        .find(|e| e.0 == point)
        .unwrap_or_else(|| panic!("no mount at {point}: {m:#?}"))
}

fn has_opt(opts: &str, o: &str) -> bool {
    opts.split(',').any(|x| x == o)
}

#[test]
fn default_mounts_are_in_place() {
    let mut c = Ctx::new("mounts");
    let src = c.scratch("bindsrc");
    fs::create_dir_all(&src).expect("mkdir bind source");
    c.push_mount(json!({
        "destination": "/mnt", "type": "bind", "source": src.to_str(),
        "options": ["rbind", "ro"]
    }));
    let m = mounts_inside(&mut c);

    let root = find(&m, "/");
    assert!(has_opt(&root.2, "ro"), "readonly root: {root:?}");
    assert_eq!(find(&m, "/proc").1, "proc");
    let sys = find(&m, "/sys");
    assert_eq!(sys.1, "sysfs");
    assert!(has_opt(&sys.2, "ro"), "{sys:?}");
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(has_opt(&sys.2, opt), "/sys lacks {opt}: {sys:?}");
    }
    let dev = find(&m, "/dev");
    assert_eq!(dev.1, "tmpfs");
    assert!(has_opt(&dev.2, "nosuid"), "{dev:?}");
    assert!(has_opt(&dev.3, "mode=755"), "{dev:?}");
    let pts = find(&m, "/dev/pts");
    assert_eq!(pts.1, "devpts");
    assert!(has_opt(&pts.3, "ptmxmode=666"), "{pts:?}");
    assert!(has_opt(&pts.3, "gid=5"), "{pts:?}");
    let shm = find(&m, "/dev/shm");
    assert_eq!(shm.1, "tmpfs");
    // tmpfs shows no mode= for its default 1777.
    assert!(
        has_opt(&shm.2, "noexec") && has_opt(&shm.2, "nodev"),
        "{shm:?}"
    );
    assert_eq!(find(&m, "/dev/mqueue").1, "mqueue");
    // The `cgroup` mount: on v1 hosts one ro cgroup mount per hierarchy under a tmpfs
    // (runc 1.1 leaves that tmpfs rw); on pure v2 one ro cgroup2 mount.
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let cg = find(&m, "/sys/fs/cgroup");
        assert_eq!(cg.1, "cgroup2", "{cg:?}");
        assert!(has_opt(&cg.2, "ro"), "{cg:?}");
    } else {
        for ctl in ["memory", "pids", "devices"] {
            if !std::path::Path::new(&format!("/sys/fs/cgroup/{ctl}")).is_dir() {
                continue;
            }
            let cg = find(&m, &format!("/sys/fs/cgroup/{ctl}"));
            assert_eq!(cg.1, "cgroup", "{cg:?}");
            assert!(has_opt(&cg.2, "ro"), "{cg:?}");
        }
    }
    let mnt = find(&m, "/mnt");
    assert!(has_opt(&mnt.2, "ro"), "bind mount must be ro: {mnt:?}");
    assert!(
        !m.iter()
            .any(|e| e.0.starts_with(c.tmp.path().to_str().expect("utf-8"))),
        "host paths of the bundle are visible inside: {m:#?}"
    );
}

#[test]
fn bind_mount_ro_is_readable_not_writable() {
    let mut c = Ctx::new("bindro");
    let src = c.scratch("bindsrc");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("hello"), "from-host").expect("write");
    c.push_mount(json!({
        "destination": "/data", "type": "bind", "source": src.to_str(),
        "options": ["rbind", "ro"]
    }));
    c.sh_writes("cat /data/hello; echo; touch /data/new && echo WROTE");
    let o = c.run();
    assert!(o.stdout.starts_with("from-host\n"), "{o}");
    assert!(!o.stdout.contains("WROTE"), "{o}");
    assert!(o.stderr.contains("Read-only file system"), "{o}");
    assert!(!src.join("new").exists());
}

#[test]
fn bind_mount_rw_writes_through() {
    let mut c = Ctx::new("bindrw");
    let src = c.scratch("bindsrc");
    fs::create_dir_all(&src).expect("mkdir");
    c.push_mount(json!({
        "destination": "/data", "type": "bind", "source": src.to_str(),
        "options": ["rbind", "rw"]
    }));
    c.sh_writes("echo inside > /data/out");
    c.run().ok();
    assert_eq!(
        fs::read_to_string(src.join("out")).expect("written"),
        "inside\n"
    );
}

#[test]
fn readonly_root_refuses_writes() {
    let mut c = Ctx::new("roroot");
    c.sh_writes("touch /newfile");
    let o = c.run();
    assert_ne!(o.code, Some(0), "{o}");
    assert!(o.stderr.contains("Read-only file system"), "{o}");
    assert!(!c.rootfs().join("newfile").exists());
}

#[test]
fn writable_root_accepts_writes() {
    let mut c = Ctx::new("rwroot");
    c.config["root"]["readonly"] = json!(false);
    c.sh_writes("echo x > /newfile");
    c.run().ok();
    assert!(c.rootfs().join("newfile").exists());
}

#[test]
fn masked_paths_read_empty() {
    // Only paths the host kernel has: masking a missing path is a no-op.
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).exists())
    .collect();
    if files.is_empty() || !std::path::Path::new("/sys/firmware").exists() {
        skip("host lacks the masked paths to check");
        return;
    }
    let mut script = String::from("ls -A /sys/firmware | wc -l");
    for f in &files {
        script.push_str(&format!("; wc -c < {f}"));
    }
    let mut c = Ctx::new("masked");
    c.sh(&script);
    let o = c.run();
    o.ok();
    let nums: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(nums.len(), files.len() + 1, "{o}");
    assert!(
        nums.iter().all(|n| *n == "0"),
        "masked paths must read empty: {o}"
    );
}

#[test]
fn readonly_paths_refuse_writes() {
    let mut c = Ctx::new("ropaths");
    c.sh_writes("echo changed > /proc/sys/kernel/hostname");
    let o = c.run();
    assert_ne!(o.code, Some(0), "{o}");
    assert!(o.stderr.contains("Read-only file system"), "{o}");

    c.id = c.new_id("ropaths2");
    let m = mounts_inside(&mut c);
    for p in [
        "/proc/sys",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sysrq-trigger",
    ] {
        if let Some(e) = m.iter().rev().find(|e| e.0 == p) {
            assert!(has_opt(&e.2, "ro"), "{p} must be ro: {e:?}");
        } else if std::path::Path::new(p).exists() {
            panic!("{p} exists on the host but is not a ro mount inside: {m:#?}");
        }
    }
}

#[test]
fn default_devices_exist() {
    let mut c = Ctx::new("devices");
    c.sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         echo discard > /dev/null && head -c 5 /dev/zero | wc -c",
    );
    let o = c.run();
    o.ok();
    let want = [
        ("/dev/null", "1:3"),
        ("/dev/zero", "1:5"),
        ("/dev/full", "1:7"),
        ("/dev/random", "1:8"),
        ("/dev/urandom", "1:9"),
        ("/dev/tty", "5:0"),
    ];
    for (dev, majmin) in want {
        let line = o
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{dev} ")))
            .unwrap_or_else(|| panic!("no {dev}: {o}"));
        assert!(line.contains("character special file"), "{line}");
        assert!(line.contains(&format!(" {majmin} ")), "{line}");
        assert!(line.ends_with(" 666"), "{dev} mode: {line}");
    }
    assert_eq!(o.stdout.lines().last(), Some("5"), "{o}");
}

/// Make a character device node in the bundle's rootfs (from the host).
fn host_mknod(c: &Ctx, name: &str, major: u64, minor: u64) {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let path = c.rootfs().join(name);
    mknod(
        &path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

/// A file already at a linux.devices path: if it is that very device it is used as it is;
/// anything else is an error naming the entry (config-linux.md MUST), and nothing is left.
#[test]
fn existing_file_at_a_device_path() {
    let mut c = Ctx::new("devexisting");
    host_mknod(&c, "capsa-null", 1, 3);
    c.config["linux"]["devices"] =
        json!([{"path": "/capsa-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]);
    c.sh("stat -c '%F %t:%T %a' /capsa-null; echo x > /capsa-null && echo written");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "character special file 1:3 600\nwritten\n", "{o}");
    if skip_unless_capsa("runc 1.1.5 keeps whatever file is at the path") {
        return;
    }
    for (what, make) in [
        (
            "a regular file",
            Box::new(|c: &Ctx| fs::write(c.rootfs().join("capsa-dev"), "x").expect("write"))
                as Box<dyn Fn(&Ctx)>,
        ),
        (
            "a character device 1:5",
            Box::new(|c: &Ctx| host_mknod(c, "capsa-dev", 1, 5)),
        ),
        (
            "a directory",
            Box::new(|c: &Ctx| fs::create_dir(c.rootfs().join("capsa-dev")).expect("mkdir")),
        ),
    ] {
        let mut c = Ctx::new("devmismatch");
        make(&c);
        c.config["linux"]["devices"] = json!([
            {"path": "/dev/capsa-ok", "type": "c", "major": 1, "minor": 3},
            {"path": "/capsa-dev", "type": "c", "major": 1, "minor": 3}
        ]);
        c.args(&["true"]);
        c.create_refused("linux.devices[1]").fails_with(what);
    }
}

/// linux.devices makes the node; only linux.resources.devices (and the default devices)
/// decide its use: a device the list denies cannot be opened (runc and crun alike).
#[test]
fn listed_device_is_usable_only_if_allowed() {
    let open = "(exec 3>/dev/capsa-kmsg) && echo opened";
    let mut c = Ctx::new("devdeny");
    c.config["linux"]["devices"] = json!([{"path": "/dev/capsa-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]);
    c.sh(&format!("{open}; true"));
    let o = c.run();
    o.ok();
    assert!(
        o.stderr.contains("Operation not permitted") && !o.stdout.contains("opened"),
        "{o}"
    );

    let mut c = Ctx::new("devallow");
    c.config["linux"]["devices"] = json!([{"path": "/dev/capsa-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]);
    c.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
    ]);
    c.sh(open);
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "opened\n", "{o}");
}

#[test]
fn dev_symlinks() {
    let mut c = Ctx::new("devlinks");
    c.sh("for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done");
    let o = c.run();
    o.ok();
    for want in [
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
        "ptmx pts/ptmx",
    ] {
        assert!(o.stdout.lines().any(|l| l == want), "missing {want:?}: {o}");
    }
}

#[test]
fn rootfs_propagation_unbindable() {
    // The rootfs is bind-mounted onto itself before the switch: an unbindable
    // tree there would refuse that, so the runtime must order it right.
    if skip_unless_capsa("runc 1.1 fails it: it binds the rootfs under an unbindable /") {
        return;
    }
    let mut c = Ctx::new("unbindable");
    c.config["linux"]["rootfsPropagation"] = json!("unbindable");
    c.args(&["cat", "/proc/self/mountinfo"]);
    let o = c.run();
    o.ok();
    // id parent maj:min root mountpoint options [optional fields] - ...
    let root = o
        .stdout
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in mountinfo: {o}"));
    let optional = root.split(" - ").next().unwrap_or("");
    assert!(
        optional.split(' ').skip(6).any(|f| f == "unbindable"),
        "{root}"
    );
}

#[test]
fn tmpfs_mount_with_options() {
    let mut c = Ctx::new("tmpfs");
    c.push_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=700", "size=1m"]
    }));
    c.sh_writes("stat -c %a /scratch; echo ok > /scratch/f && cat /scratch/f");
    let o = c.run();
    o.ok();
    assert_eq!(o.stdout, "700\nok\n", "{o}");
}

#[test]
fn mount_destination_is_created() {
    // The destination does not exist in the rootfs; the runtime creates it.
    let mut c = Ctx::new("mkdest");
    c.require_isolated_root();
    c.config["root"]["readonly"] = json!(false);
    c.push_mount(json!({
        "destination": "/deep/new/dir", "type": "tmpfs", "source": "tmpfs", "options": []
    }));
    c.args(&["grep", " /deep/new/dir ", "/proc/self/mountinfo"]);
    let o = c.run();
    o.ok();
    assert!(o.stdout.contains("tmpfs"), "{o}");
}

/// Run the runtime in a private mount namespace of its own where a tmpfs
/// is mounted on `dir` (the host's mount table is never touched).
fn with_mount_on(dir: &std::path::Path) -> impl FnOnce(&mut std::process::Command) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let target = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
    move |cmd| {
        // SAFETY: runs in the forked child before exec; unshare and mount
        // with pointers to NUL-terminated strings that outlive the calls.
        unsafe {
            cmd.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let root = c"/";
                let none = std::ptr::null();
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                if libc::mount(none, root.as_ptr(), none, flags, std::ptr::null()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let tmpfs = c"tmpfs";
                if libc::mount(
                    tmpfs.as_ptr(),
                    target.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// A mount point whose name is not UTF-8 (mountinfo is bytes) must not
/// make create fail.
#[test]
fn non_utf8_mount_point_elsewhere() {
    use std::os::unix::ffi::OsStrExt;
    let mut c = Ctx::new("nonutf8mnt");
    let dir = c
        .scratch("x")
        .with_file_name(std::ffi::OsStr::from_bytes(b"mnt-\xff\xfe"));
    fs::create_dir_all(&dir).expect("mkdir non-UTF-8 dir");
    c.args(&["true"]);
    c.write_config();
    let b = c.bundle();
    let o = c.rt_with(
        &["run", "--bundle", b.to_str().expect("utf-8"), &c.id],
        with_mount_on(&dir),
    );
    o.ok();
}

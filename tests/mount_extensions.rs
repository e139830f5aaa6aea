//! Mount options beyond mount(8)'s: id-mapped bind mounts (`idmap`, `ridmap`, per-mount
//! uidMappings/gidMappings), the recursive attributes (`rro`, `rnosuid`, ...), and the
//! promise behind `features`: every listed option works in a real mount.

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whether the runtime says it implements id-mapped mounts (runc 1.1 does not).
fn idmap_supported(c: &Ctx) -> bool {
    let yes = c.features()["linux"]["mountExtensions"]["idmap"]["enabled"] == json!(true);
    if !yes {
        skip("the runtime does not list id-mapped mounts in `features`");
    }
    yes
}

/// A tmpfs mounted on the host under a test's own temp dir, unmounted on drop
/// (declare it after the Ctx that owns the directory, so it goes first).
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(path: &Path, data: &str) -> HostMount {
        fs::create_dir_all(path).expect("mkdir mount point");
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(data),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", path.display()));
        HostMount(path.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A host directory owned by `id:id` with a file `f`, and a host tmpfs submount `sub`
/// owned by `id:id` too.
fn source_tree(c: &Ctx, name: &str, id: u32) -> (PathBuf, HostMount) {
    let dir = c.scratch(name);
    fs::create_dir_all(&dir).expect("mkdir source");
    fs::write(dir.join("f"), "x").expect("write f");
    std::os::unix::fs::chown(&dir, Some(id), Some(id)).expect("chown source");
    std::os::unix::fs::chown(dir.join("f"), Some(id), Some(id)).expect("chown f");
    let sub = HostMount::tmpfs(&dir.join("sub"), &format!("uid={id},gid={id},mode=755"));
    (dir, sub)
}

fn one_to_one(from: u32, to: u32) -> Value {
    json!([{"containerID": from, "hostID": to, "size": 1}])
}

/// `stat -c '%u:%g %n'` lines of the workload, as a map from path to "uid:gid".
fn owners(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(ids, _)| ids.contains(':'))
        .map(|(ids, p)| (p.to_string(), ids.to_string()))
        .collect()
}

/// Without a user namespace: files owned by host uid 3000 show up as 4000 through the
/// mount, and what uid 4000 creates through it lands on disk as 3000.
#[test]
fn idmapped_bind_shows_the_mapped_owner() {
    let mut c = Ctx::new("idmapbind");
    if !idmap_supported(&c) {
        return;
    }
    let (src, _sub) = source_tree(&c, "src", 3000);
    c.push_mount(json!({
        "destination": "/m", "type": "bind", "source": src, "options": ["bind", "idmap"],
        "uidMappings": one_to_one(3000, 4000), "gidMappings": one_to_one(3000, 4000)
    }));
    c.config["process"]["user"] = json!({"uid": 4000, "gid": 4000});
    c.sh("stat -c '%u:%g %n' /m /m/f && touch /m/new && stat -c '%u:%g %n' /m/new");
    let o = c.run();
    o.ok();
    let got = owners(&o.stdout);
    for p in ["/m", "/m/f", "/m/new"] {
        assert_eq!(
            got.get(p).map(String::as_str),
            Some("4000:4000"),
            "{p}: {o}"
        );
    }
    let new = fs::metadata(src.join("new")).expect("new on the host");
    assert_eq!(
        (new.uid(), new.gid()),
        (3000, 3000),
        "on disk: unmapped back"
    );
}

/// `idmap` without mappings takes the container's user namespace mapping: host-root
/// files are root's in the container (not the overflow id), and the container's root
/// writes host-root files.
#[test]
fn idmap_without_mappings_uses_the_user_namespace() {
    let mut c = Ctx::new("idmapuserns");
    if !idmap_supported(&c) {
        return;
    }
    let (src, _sub) = source_tree(&c, "src", 0);
    std::os::unix::fs::chown(src.join("f"), Some(1000), Some(1000)).expect("chown f");
    c.set_ns("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    // The rootfs belongs to host root: its root in the container cannot make them.
    for d in ["m", "plain"] {
        fs::create_dir(c.rootfs().join(d)).expect("mkdir mount point");
    }
    c.push_mount(
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["rbind", "idmap"]}),
    );
    c.push_mount(
        json!({"destination": "/plain", "type": "bind", "source": src, "options": ["rbind"]}),
    );
    c.sh("stat -c '%u:%g %n' /m /m/f /plain && touch /m/new");
    let o = c.run();
    o.ok();
    let got = owners(&o.stdout);
    assert_eq!(got.get("/m").map(String::as_str), Some("0:0"), "{o}");
    assert_eq!(
        got.get("/m/f").map(String::as_str),
        Some("1000:1000"),
        "{o}"
    );
    assert_eq!(
        got.get("/plain").map(String::as_str),
        Some("65534:65534"),
        "{o}"
    );
    let new = fs::metadata(src.join("new")).expect("new on the host");
    assert_eq!((new.uid(), new.gid()), (0, 0));
}

/// In a user namespace joined by path, `idmap` without mappings takes that namespace's.
#[test]
fn idmap_without_mappings_uses_a_joined_user_namespace() {
    let mut holder = Ctx::new("idmapholder");
    if !idmap_supported(&holder) {
        return;
    }
    holder.set_ns("user", None);
    holder.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    holder.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    if let Some(m) = holder.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    let pid = holder.create_holder();

    let mut c = Ctx::new("idmapjoin");
    let (src, _sub) = source_tree(&c, "src", 1000);
    c.set_ns("user", Some(&format!("/proc/{pid}/ns/user")));
    c.config["linux"]["uidMappings"] = holder.config["linux"]["uidMappings"].clone();
    c.config["linux"]["gidMappings"] = holder.config["linux"]["gidMappings"].clone();
    if let Some(m) = c.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    fs::create_dir(c.rootfs().join("m")).expect("mkdir mount point");
    c.push_mount(
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["rbind", "idmap"]}),
    );
    c.sh("stat -c '%u:%g %n' /m");
    let o = c.run();
    o.ok();
    assert_eq!(
        owners(&o.stdout).get("/m").map(String::as_str),
        Some("1000:1000"),
        "{o}"
    );
}

/// `ridmap` maps every mount of an rbind; `idmap` only the top one.
#[test]
fn ridmap_reaches_submounts_idmap_does_not() {
    let mut c = Ctx::new("idmaprec");
    if !idmap_supported(&c) {
        return;
    }
    let (src, _sub) = source_tree(&c, "src", 3000);
    for (dest, opt) in [("/top", "idmap"), ("/rec", "ridmap")] {
        c.push_mount(json!({
            "destination": dest, "type": "bind", "source": src, "options": ["rbind", opt],
            "uidMappings": one_to_one(3000, 4000), "gidMappings": one_to_one(3000, 4000)
        }));
    }
    c.sh("stat -c '%u:%g %n' /top /top/sub /rec /rec/sub");
    let o = c.run();
    o.ok();
    let got = owners(&o.stdout);
    for (p, want) in [
        ("/top", "4000:4000"),
        ("/top/sub", "3000:3000"),
        ("/rec", "4000:4000"),
        ("/rec/sub", "4000:4000"),
    ] {
        assert_eq!(got.get(p).map(String::as_str), Some(want), "{p}: {o}");
    }
    // The source itself is untouched.
    assert_eq!(fs::metadata(&src).expect("stat src").uid(), 3000);
}

/// Mappings without the `idmap` option count as `idmap` (runc does the same; CRI-O
/// writes them that way).
#[test]
fn mappings_without_the_option_are_an_idmap() {
    let mut c = Ctx::new("idmapimplicit");
    if !idmap_supported(&c) {
        return;
    }
    let (src, _sub) = source_tree(&c, "src", 3000);
    c.push_mount(json!({
        "destination": "/m", "type": "bind", "source": src, "options": ["rbind"],
        "uidMappings": one_to_one(3000, 4000), "gidMappings": one_to_one(3000, 4000)
    }));
    c.sh("stat -c '%u:%g %n' /m");
    let o = c.run();
    o.ok();
    assert_eq!(
        owners(&o.stdout).get("/m").map(String::as_str),
        Some("4000:4000"),
        "{o}"
    );
}

#[test]
fn idmap_errors_are_clear_and_leave_nothing() {
    let c0 = Ctx::new("idmaperr");
    if !idmap_supported(&c0) {
        return;
    }
    let maps = one_to_one(0, 1000);
    let cases = [
        (
            json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": maps, "gidMappings": maps}),
            "only supported for bind mounts",
        ),
        (
            json!({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"],
                   "uidMappings": maps}),
            "gidMappings: must be given together",
        ),
        (
            json!({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}),
            "no user namespace",
        ),
        // sysfs has no id-mapped mounts: the kernel refuses.
        (
            json!({"destination": "/m", "type": "bind", "source": "/sys/kernel", "options": ["bind", "idmap"],
                   "uidMappings": maps, "gidMappings": maps}),
            "does its filesystem support id-mapped mounts",
        ),
    ];
    for (mount, want) in cases {
        let mut c = Ctx::new("idmaperr");
        c.push_mount(mount.clone());
        c.args(&["true"]);
        let o = c.run();
        assert_ne!(o.code, Some(0), "{mount}: {o}");
        if is_capsa() {
            o.fails_with(want).fails_with("mounts[7]");
        }
        c.assert_nothing_left(&c.id);
    }
}

/// runtime-spec 1.3's table of Linux mount options (config.md), plus idmap/ridmap.
const SPEC_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
    "idmap",
    "ridmap",
];

#[test]
fn features_list_the_whole_option_table_and_idmap() {
    let c = Ctx::new("optfeatures");
    if skip_unless_capsa("capsa implements the whole table") {
        return;
    }
    let f = c.features();
    let listed: Vec<&str> = f["mountOptions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for o in SPEC_OPTIONS {
        assert!(listed.contains(o), "features lacks {o}: {listed:?}");
    }
    assert_eq!(
        f["linux"]["mountExtensions"]["idmap"]["enabled"],
        json!(true)
    );
}

/// The recursive attribute options, by the MOUNT_ATTR they set, as mountinfo spells it.
const RECURSIVE: &[(&str, &str)] = &[
    ("rro", "ro"),
    ("rnosuid", "nosuid"),
    ("rnodev", "nodev"),
    ("rnoexec", "noexec"),
    ("rnoatime", "noatime"),
    ("rnodiratime", "nodiratime"),
    ("rnosymfollow", "nosymfollow"),
];

/// Every recursive attribute option of runtime-spec's table (these go on an rbind).
const RECURSIVE_ALL: &[&str] = &[
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
];

/// Per-mount options, as mountinfo spells them, that an option must produce.
fn visible_effect(opt: &str) -> Option<&'static str> {
    Some(match opt {
        "ro" | "remount" => "ro",
        "nosuid" => "nosuid",
        "nodev" => "nodev",
        "noexec" => "noexec",
        "noatime" => "noatime",
        "nodiratime" => "nodiratime",
        "nosymfollow" => "nosymfollow",
        "idmap" | "ridmap" => "idmapped",
        _ => return RECURSIVE.iter().find(|r| r.0 == opt).map(|r| r.1),
    })
}

const RUNC_11_BROKEN: &[&str] = &["defaults", "ratime", "rnostrictatime", "rnorelatime"];

/// Every option `features` lists is accepted in a real mount of a container, and the
/// options with a per-mount flag show it in mountinfo (the recursive ones on a submount
/// too). One container carries one mount per option.
#[test]
fn every_listed_option_works_in_a_real_mount() {
    let mut c = Ctx::new("optall");
    let f = c.features();
    let listed = str_list(&f["mountOptions"]);
    assert!(!listed.is_empty(), "no mountOptions in features: {f}");
    let (src, _sub) = source_tree(&c, "src", 0);
    let idmap = f["linux"]["mountExtensions"]["idmap"]["enabled"] == json!(true);
    let mut dests: Vec<(String, String)> = Vec::new();
    let mut skipped = 0;
    for (i, opt) in listed.iter().enumerate() {
        // runc 1.1 lists these but fails them: "defaults" goes to the filesystem as data,
        // and clearing one atime attribute without the whole atime field is EINVAL.
        if RUNC_11_BROKEN.contains(&opt.as_str()) && !is_capsa() {
            skipped += 1;
            continue;
        }
        let dest = format!("/o/{i}");
        let recursive = RECURSIVE_ALL.contains(&opt.as_str());
        let m = match opt.as_str() {
            "bind" | "rbind" => {
                json!({"destination": dest, "type": "bind", "source": src, "options": [opt]})
            }
            "idmap" | "ridmap" if idmap => json!({
                "destination": dest, "type": "bind", "source": src, "options": ["rbind", opt],
                "uidMappings": one_to_one(0, 1000), "gidMappings": one_to_one(0, 1000)
            }),
            "idmap" | "ridmap" => {
                skipped += 1;
                continue;
            }
            "remount" => {
                c.push_mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
                json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["remount", "ro"]})
            }
            "tmpcopyup" => {
                json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": [opt]})
            }
            _ if recursive => {
                json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", opt]})
            }
            _ => json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [opt]}),
        };
        c.push_mount(m);
        dests.push((opt.clone(), dest));
    }
    c.sh("cat /proc/self/mountinfo; echo PASSWD; cat /etc/passwd");
    let o = c.run();
    assert!(o.success(), "options {:?}: {o}", dests);
    assert_eq!(
        dests.len() + skipped,
        listed.len(),
        "a mount per option: {dests:?}"
    );

    let info = o.stdout.split("PASSWD").next().unwrap_or("");
    let ms = parse_mountinfo(info);
    let opts_at = |mp: &str| {
        ms.iter()
            .rev()
            .find(|m| m.0 == mp)
            .map(|m| m.2.clone())
            .unwrap_or_else(|| panic!("{mp} is not a mount point: {info}"))
    };
    for (opt, dest) in &dests {
        if opt == "tmpcopyup" {
            assert!(
                o.stdout.contains("root:x:0:0"),
                "tmpcopyup kept /etc/passwd: {o}"
            );
            continue;
        }
        let got = opts_at(dest);
        if let Some(want) = visible_effect(opt) {
            assert!(got.split(',').any(|x| x == want), "{opt} at {dest}: {got}");
            if RECURSIVE.iter().any(|r| r.0 == opt) {
                let sub = opts_at(&format!("{dest}/sub"));
                assert!(
                    sub.split(',').any(|x| x == want),
                    "{opt} at {dest}/sub: {sub}"
                );
            }
        }
    }
}

//! config.md apart from process: specification version, root, mounts (with the Linux mount
//! options table), hostname/domainname, annotations, extensibility and valid values.

use crate::bundle::Bundle;
use crate::harness::{Ctx, R, Verdict, ensure, io};
use crate::table::{MUST, SHOULD, Test, Want::*, default, probe, refuse, t};
use serde_json::json;
use std::fs;
use std::process::Command;

/// A named configuration change.
type Case = (&'static str, fn(&mut Bundle));

/// Each configuration MUST be refused at create; all the accepted ones are named.
fn refuse_each(c: &mut Ctx, cases: &[Case]) -> R {
    let mut accepted = Vec::new();
    for (what, setup) in cases {
        let mut b = c.bundle_ops(&["exit:0"])?;
        setup(&mut b);
        if !c.create_fails(&b)? {
            accepted.push(*what);
        }
    }
    ensure(
        accepted.is_empty(),
        format!(
            "accepted, but each MUST generate an error: {}",
            accepted.join("; ")
        ),
    )
}

/// A directory under the test dir with a tmpfs mounted at `sub` holding `marker` (on the
/// host side, so bind vs rbind differ); unmounted when the returned guard drops.
struct SubMount(std::path::PathBuf);

impl SubMount {
    fn new(c: &Ctx) -> Result<SubMount, Verdict> {
        let src = c.dir.join("rbind-src");
        let sub = src.join("sub");
        io(fs::create_dir_all(&sub), "mkdir the bind source")?;
        let st = io(
            Command::new("mount")
                .args(["-t", "tmpfs", "oct-sub"])
                .arg(&sub)
                .status(),
            "mount",
        )?;
        ensure(st.success(), "cannot mount a tmpfs under the bind source")?;
        io(
            fs::write(sub.join("marker"), "in-submount"),
            "write the marker",
        )?;
        Ok(SubMount(sub))
    }
    fn src(&self) -> String {
        self.0
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

impl Drop for SubMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "config.oci-version-1.3",
            "config.md#specification-version",
            MUST,
            "\"if a configuration is compliant with version 1.1 of this specification, it is compatible with all runtimes that support any 1.1 or later release\": a 1.3 runtime MUST accept a bundle declaring 1.3.0.",
            |c| {
                c.run_ops(&["exit:0"], |b| b.set("ociVersion", json!("1.3.0")))
                    .map(|_| ())
            },
        ),
        t(
            "config.unknown-property-ignored",
            "config.md#extensibility",
            MUST,
            "Runtimes MAY log unknown properties but MUST otherwise ignore them. That includes not generating errors if they encounter an unknown property.",
            |c| {
                c.run_ops(&["exit:0"], |b| {
                    b.set("octUnknownTop", json!({"a": 1}));
                    b.set("process.octUnknown", json!(true));
                    b.set("linux.octUnknown", json!("x"));
                })
                .map(|_| ())
            },
        ),
        t(
            "config.invalid-values-error",
            "config.md#valid-values",
            MUST,
            "Runtimes MUST generate an error when invalid or unsupported values are encountered (unknown rootfsPropagation, namespace type, seccomp action, personality domain; hook timeout 0 where it MUST be greater than zero; a relative namespace path where it MUST be absolute).",
            |c| {
                refuse_each(
                    c,
                    &[
                        ("rootfsPropagation \"octbogus\"", |b| {
                            b.set("linux.rootfsPropagation", json!("octbogus"))
                        }),
                        ("namespace type \"octbogus\"", |b| {
                            b.add_ns("octbogus", None)
                        }),
                        ("seccomp defaultAction SCMP_ACT_OCTBOGUS", |b| {
                            b.set(
                                "linux.seccomp",
                                json!({"defaultAction": "SCMP_ACT_OCTBOGUS"}),
                            )
                        }),
                        ("personality domain OCTBOGUS", |b| {
                            b.set("linux.personality", json!({"domain": "OCTBOGUS"}))
                        }),
                        ("a createRuntime hook with timeout 0", |b| {
                            b.set(
                                "hooks.createRuntime",
                                json!([{"path": "/bin/true", "timeout": 0}]),
                            )
                        }),
                        ("a relative network namespace path", |b| {
                            b.add_ns("network", Some("proc/self/ns/net"))
                        }),
                    ],
                )
            },
        ),
        // ---- root
        probe(
            "root.path-relative",
            "config.md#root",
            MUST,
            "root.path: \"either an absolute path or a relative path to the bundle\" (relative: rootfs).",
            &["ls:/"],
            default,
            &[("ls./", Has("checker"))],
        ),
        probe(
            "root.path-absolute",
            "config.md#root",
            MUST,
            "root.path: \"either an absolute path or a relative path to the bundle\" (absolute).",
            &["ls:/"],
            |b| {
                let abs = b.rootfs().display().to_string();
                b.set("root.path", json!(abs));
            },
            &[("ls./", Has("checker"))],
        ),
        refuse(
            "root.missing-errors",
            "config.md#root",
            MUST,
            "A directory MUST exist at the path declared by root.path; otherwise the environment cannot be created and create MUST generate an error (lifecycle step 2).",
            |b| b.set("root.path", json!("oct-no-such-rootfs")),
        ),
        probe(
            "root.readonly",
            "config.md#root",
            MUST,
            "readonly: if true then the root filesystem MUST be read-only inside the container.",
            &["write:/oct-file"],
            |b| b.set("root.readonly", json!(true)),
            &[("write./oct-file", Eq("err:30"))],
        ),
        probe(
            "root.readwrite",
            "config.md#root",
            MUST,
            "readonly: defaults to false (the root filesystem is writable).",
            &["write:/oct-file"],
            default,
            &[("write./oct-file", Eq("ok"))],
        ),
        // ---- mounts
        t(
            "mounts.tmpfs-options",
            "config.md#mounts",
            MUST,
            "For Linux, the parameters are as documented in mount(2): a tmpfs with type, source and options (nosuid, nodev, mode, size) as given.",
            |c| {
                let kv = c.run_ops(&["mountinfo", "stat:/mnt/t"], |b| {
                    b.add_mount(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=0710", "size=1m"]}))
                })?;
                let m = kv.get("mount./mnt/t")?;
                ensure(m.starts_with("tmpfs "), format!("/mnt/t is not tmpfs: {m}"))?;
                ensure(
                    m.contains("nosuid") && m.contains("nodev"),
                    format!("options not applied: {m}"),
                )?;
                ensure(m.contains("size=1024k"), format!("size not applied: {m}"))?;
                let st = kv.get("stat./mnt/t")?;
                ensure(st.starts_with("d 710 "), format!("mode not applied: {st}"))
            },
        ),
        probe(
            "mounts.order",
            "config.md#mounts",
            MUST,
            "The runtime MUST mount entries in the listed order (a later mount on a sub-path of an earlier one lands on top of it).",
            &["stat:/mnt/a/b"],
            |b| {
                b.add_mount(json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}));
                b.add_mount(json!({"destination": "/mnt/a/b", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]}));
            },
            &[("stat./mnt/a/b", Prefix("d 700"))],
        ),
        t(
            "mounts.bind-ro",
            "config.md#configLinuxMountOptions",
            MUST,
            "bind and ro are MUST options: a bind mount with ro shows the source at destination, read-only.",
            |c| {
                let src = c.dir.join("bindsrc");
                io(fs::create_dir_all(&src), "mkdir")?;
                io(fs::write(src.join("hello"), "hi"), "write")?;
                let s = src.display().to_string();
                let kv = c.run_ops(&["cat:/mnt/ro/hello", "write:/mnt/ro/new"], |b| {
                    b.add_mount(json!({"destination": "/mnt/ro", "type": "bind", "source": s, "options": ["rbind", "ro"]}))
                })?;
                crate::harness::eq("bind source content", kv.get("cat./mnt/ro/hello")?, "hi")?;
                crate::harness::eq("write in a ro bind", kv.get("write./mnt/ro/new")?, "err:30")
            },
        ),
        probe(
            "mounts.destination-created",
            "config.md#mounts",
            MUST,
            "destination: destination of mount point: path inside container (a missing directory is created so that the mount can be made).",
            &["stat:/oct/deep/dir"],
            |b| {
                b.add_mount(
                    json!({"destination": "/oct/deep/dir", "type": "tmpfs", "source": "tmpfs"}),
                )
            },
            &[("stat./oct/deep/dir", Prefix("d "))],
        ),
        probe(
            "mounts.relative-destination",
            "config.md#mounts",
            MUST,
            "destination (Linux): it MAY be a relative path, in which case it MUST be interpreted as relative to \"/\".",
            &["mountinfo"],
            |b| {
                b.add_mount(
                    json!({"destination": "mnt/oct-rel", "type": "tmpfs", "source": "tmpfs"}),
                )
            },
            &[("mount./mnt/oct-rel", Prefix("tmpfs "))],
        ),
        t(
            "mounts.bind-file",
            "config.md#mounts",
            MUST,
            "source: can also be a file for bind mounts; the file appears at destination.",
            |c| {
                let src = c.dir.join("file-src");
                io(fs::write(&src, "file-content"), "write")?;
                let s = src.display().to_string();
                let kv = c.run_ops(&["cat:/etc/oct-file"], |b| {
                    b.add_mount(json!({"destination": "/etc/oct-file", "type": "bind", "source": s, "options": ["bind"]}))
                })?;
                crate::harness::eq("bound file", kv.get("cat./etc/oct-file")?, "file-content")
            },
        ),
        t(
            "mounts.bind-relative-source",
            "config.md#mounts",
            MUST,
            "source: \"Path values for bind mounts are either absolute or relative to the bundle.\"",
            |c| {
                let mut b = c.bundle_ops(&["cat:/mnt/rel/hello"])?;
                io(fs::create_dir_all(b.dir.join("relsrc")), "mkdir")?;
                io(fs::write(b.dir.join("relsrc/hello"), "relative"), "write")?;
                b.add_mount(json!({"destination": "/mnt/rel", "type": "bind", "source": "relsrc", "options": ["rbind"]}));
                let kv = c.run(&b)?;
                crate::harness::eq(
                    "content of the bundle-relative source",
                    kv.get("cat./mnt/rel/hello")?,
                    "relative",
                )
            },
        ),
        probe(
            "mounts.options-flags",
            "config.md#configLinuxMountOptions",
            MUST,
            "Runtimes MUST implement ro, nosuid, nodev, noexec, noatime, nodiratime, relatime, strictatime, sync, dirsync, lazytime (the MUST options of the table correspond to mount(8)).",
            &["mountinfo"],
            |b| {
                b.add_mount(json!({"destination": "/mnt/f", "type": "tmpfs", "source": "tmpfs",
                    "options": ["ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "sync", "dirsync", "lazytime"]}));
                b.add_mount(json!({"destination": "/mnt/r", "type": "tmpfs", "source": "tmpfs", "options": ["relatime"]}));
                b.add_mount(json!({"destination": "/mnt/s", "type": "tmpfs", "source": "tmpfs", "options": ["strictatime"]}));
            },
            &[
                (
                    "mount./mnt/f",
                    Has("opts=ro,nosuid,nodev,noexec,noatime,nodiratime "),
                ),
                ("mount./mnt/f", Has("sync,dirsync,lazytime")),
                ("mount./mnt/r", Has("opts=rw,relatime ")),
                ("mount./mnt/s", Has("opts=rw ")),
            ],
        ),
        probe(
            "mounts.options-clear",
            "config.md#configLinuxMountOptions",
            MUST,
            "Runtimes MUST implement rw, suid, dev, exec (the mount(8) options that clear ro, nosuid, nodev, noexec given before them).",
            &["mountinfo"],
            |b| {
                b.add_mount(
                    json!({"destination": "/mnt/c", "type": "tmpfs", "source": "tmpfs",
                    "options": ["ro", "nosuid", "nodev", "noexec", "rw", "suid", "dev", "exec"]}),
                )
            },
            &[("mount./mnt/c", Has("opts=rw,relatime "))],
        ),
        t(
            "mounts.bind-propagation",
            "config.md#configLinuxMountOptions",
            MUST,
            "Runtimes MUST implement the bind mount propagation options shared, private, unbindable (and their r* forms).",
            |c| {
                let src = c.dir.join("prop-src");
                io(fs::create_dir_all(&src), "mkdir")?;
                let s = src.display().to_string();
                let kv = c.run_ops(&["mountinfo"], |b| {
                    for (d, o) in [("/mnt/ps", "rshared"), ("/mnt/pp", "rprivate"), ("/mnt/pu", "runbindable"), ("/mnt/ps2", "shared")] {
                        b.add_mount(json!({"destination": d, "type": "bind", "source": s, "options": ["rbind", o]}));
                    }
                })?;
                for (mp, want) in [
                    ("/mnt/ps", "shared:"),
                    ("/mnt/ps2", "shared:"),
                    ("/mnt/pp", "private"),
                    ("/mnt/pu", "unbindable"),
                ] {
                    let m = kv.get(&format!("mount.{mp}"))?;
                    ensure(
                        m.contains(&format!("prop={want}")),
                        format!("{mp}: want propagation {want}: {m}"),
                    )?;
                }
                Ok(())
            },
        ),
        t(
            "mounts.rbind-submounts",
            "config.md#configLinuxMountOptions",
            MUST,
            "bind and rbind are MUST options (bind mounts and shared subtrees): rbind brings the source's submounts along, bind does not.",
            |c| {
                let sm = SubMount::new(c)?;
                let s = sm.src();
                let kv = c.run_ops(&["cat:/mnt/r/sub/marker", "cat:/mnt/b/sub/marker"], |b| {
                    b.add_mount(json!({"destination": "/mnt/r", "type": "bind", "source": s, "options": ["rbind"]}));
                    b.add_mount(json!({"destination": "/mnt/b", "type": "bind", "source": s, "options": ["bind"]}));
                })?;
                crate::harness::eq(
                    "submount through rbind",
                    kv.get("cat./mnt/r/sub/marker")?,
                    "in-submount",
                )?;
                crate::harness::eq(
                    "submount through bind",
                    kv.get("cat./mnt/b/sub/marker")?,
                    "err:2",
                )
            },
        ),
        t(
            "mounts.recursive-ro",
            "config.md#configLinuxMountOptions",
            SHOULD,
            "rro: SHOULD be implemented, recursive ro (mount_setattr AT_RECURSIVE): submounts of an rbind with rro are read-only too.",
            |c| {
                let sm = SubMount::new(c)?;
                let s = sm.src();
                let kv = c.run_ops(&["write:/mnt/rro/sub/new"], |b| {
                    b.add_mount(json!({"destination": "/mnt/rro", "type": "bind", "source": s, "options": ["rbind", "rro"]}))
                })?;
                crate::harness::eq(
                    "write in a submount of an rro bind",
                    kv.get("write./mnt/rro/sub/new")?,
                    "err:30",
                )
            },
        ),
        probe(
            "mounts.unknown-option-as-data",
            "config.md#configLinuxMountOptions",
            SHOULD,
            "Runtimes SHOULD treat unknown options as filesystem-specific ones and pass those as a comma-separated string to the data argument of mount(2) (tmpfs nr_inodes).",
            &["mountinfo"],
            |b| {
                b.add_mount(json!({"destination": "/mnt/d", "type": "tmpfs", "source": "tmpfs", "options": ["nr_inodes=123", "size=2m"]}))
            },
            &[("mount./mnt/d", Has("nr_inodes=123"))],
        ),
        refuse(
            "mounts.idmap-without-userns-errors",
            "config.md#configLinuxMountOptions",
            MUST,
            "idmap: \"If there are no uidMappings and gidMappings specified and the container isn't using user namespaces, an error MUST be returned.\"",
            |b| {
                let s = b.rootfs().join("etc").display().to_string();
                b.add_mount(json!({"destination": "/mnt/idm", "type": "bind", "source": s, "options": ["bind", "idmap"]}));
            },
        ),
        t(
            "mounts.idmap",
            "config.md#configLinuxMountOptions",
            SHOULD,
            "idmap (SHOULD): the mount MUST have an idmapping applied, with the mount's uidMappings/gidMappings (a host-root-owned file shows as root in a user-namespaced container, not as the overflow id).",
            |c| {
                let src = c.dir.join("idmap-src");
                io(fs::create_dir_all(&src), "mkdir")?;
                io(fs::write(src.join("f"), "x"), "write")?;
                let s = src.display().to_string();
                let kv = c.run_ops(&["stat:/mnt/idm/f", "stat:/mnt/plain/f"], |b| {
                    b.userns();
                    // The container's root (host uid 100000) cannot create them in the rootfs.
                    for d in ["mnt/idm", "mnt/plain"] {
                        let _ = fs::create_dir_all(b.rootfs().join(d));
                    }
                    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                    b.add_mount(json!({"destination": "/mnt/idm", "type": "bind", "source": s, "options": ["bind", "idmap"],
                        "uidMappings": map, "gidMappings": map}));
                    b.add_mount(json!({"destination": "/mnt/plain", "type": "bind", "source": s, "options": ["bind"]}));
                })?;
                let plain = kv.get("stat./mnt/plain/f")?;
                ensure(
                    plain.starts_with("f 644 65534 65534"),
                    format!("without idmap the file should show the overflow id: {plain}"),
                )?;
                let idm = kv.get("stat./mnt/idm/f")?;
                ensure(
                    idm.starts_with("f 644 0 0"),
                    format!("through the idmapped mount the file shows as {idm}, want owner 0:0"),
                )
            },
        ),
        // ---- hostname, domainname, annotations
        probe(
            "hostname.set",
            "config.md#hostname",
            MUST,
            "hostname specifies the container's hostname as seen by processes running inside the container (in its UTS namespace).",
            &["uts"],
            |b| b.set("hostname", json!("oct-host")),
            &[("hostname", Eq("oct-host"))],
        ),
        probe(
            "domainname.set",
            "config.md#domainname",
            MUST,
            "domainname specifies the container's domainname as seen by processes running inside the container.",
            &["uts"],
            |b| b.set("domainname", json!("oct.example")),
            &[("domainname", Eq("oct.example"))],
        ),
        probe(
            "annotations.unknown-keys",
            "config.md#annotations",
            MUST,
            "Runtimes MUST handle unknown annotation keys like any other unknown property (ignore them: no error).",
            &["exit:0"],
            |b| {
                b.set(
                    "annotations",
                    json!({"com.example.oct-unknown": "x", "org.example.oct": ""}),
                )
            },
            &[],
        ),
    ]
}

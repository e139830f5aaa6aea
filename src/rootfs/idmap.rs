//! Id-mapped bind mounts (options `idmap`/`ridmap`, `mounts[].uidMappings`
//! and `gidMappings`). The kernel lets only a process privileged over the
//! source's filesystem (for host paths: the host's user namespace) give a
//! mount an id mapping, and only while the mount is detached. So the parent
//! makes each such mount before it clones the init: open_tree(OPEN_TREE_CLONE)
//! of the source, mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace that
//! carries the mapping. The init inherits the fds and attaches each tree
//! (move_mount) at its turn in `mounts`, in its own mount namespace.
//!
//! Nothing here runs for a config without id-mapped mounts.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use super::RootfsError;
use super::newmount::{clone_tree, set_idmap};
use super::options::{Idmap, MountOptions, parse_mount_options};
use crate::sys::{Ctx, SysError};

/// The detached, id-mapped trees made by `prepare`, by `mounts` index.
#[derive(Default)]
pub struct IdmappedTrees(Vec<(usize, OwnedFd)>);

impl IdmappedTrees {
    /// The tree for `mounts[index]`, if that entry is id-mapped.
    pub fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.iter().find(|(i, _)| *i == index).map(|(_, fd)| fd)
    }
}

/// The container's user namespace, where a mount without mappings of its
/// own takes them from (runtime-spec: "the runtime MAY use the container's
/// user namespace mapping").
pub enum ContainerUserns<'a> {
    None,
    /// A new one, with these /proc/PID/{uid,gid}_map texts.
    New {
        uid_map: &'a str,
        gid_map: &'a str,
    },
    /// One joined by path.
    Join(&'a Path),
}

fn given(maps: &Option<Vec<LinuxIdMapping>>) -> bool {
    maps.as_ref().is_some_and(|m| !m.is_empty())
}

/// Whether `m` is id-mapped, and how far. Mappings without `idmap` or
/// `ridmap` count as `idmap`, as in runc: CRI-O sends them that way.
pub fn idmap_of(m: &Mount, opts: &MountOptions) -> Option<Idmap> {
    let maps = given(m.uid_mappings()) || given(m.gid_mappings());
    opts.idmap.or(maps.then_some(Idmap::Top))
}

fn config(field: impl Into<String>, msg: impl Into<String>) -> RootfsError {
    RootfsError::Config {
        field: field.into(),
        msg: msg.into(),
    }
}

/// The mount's own (uid_map, gid_map) texts, or None to use the container's.
fn own_maps(m: &Mount, field: &str) -> Result<Option<(String, String)>, RootfsError> {
    let text = |maps: &Option<Vec<LinuxIdMapping>>, name: &str| {
        crate::namespaces::id_map(maps.as_deref(), &format!("{field}.{name}"))
            .map_err(|(f, msg)| config(f, msg))
    };
    match (given(m.uid_mappings()), given(m.gid_mappings())) {
        (false, false) => Ok(None),
        (true, true) => Ok(Some((
            text(m.uid_mappings(), "uidMappings")?,
            text(m.gid_mappings(), "gidMappings")?,
        ))),
        (true, false) => Err(config(
            format!("{field}.gidMappings"),
            "must be given together with uidMappings",
        )),
        (false, true) => Err(config(
            format!("{field}.uidMappings"),
            "must be given together with gidMappings",
        )),
    }
}

/// The checks on an id-mapped `mounts[]` entry that need no system access.
/// `userns`: the container has a user namespace (new or joined).
pub fn check(m: &Mount, opts: &MountOptions, field: &str, userns: bool) -> Result<(), RootfsError> {
    if idmap_of(m, opts).is_none() {
        return Ok(());
    }
    if !opts.is_bind() {
        return Err(config(
            field,
            "id-mapped mounts are only supported for bind mounts",
        ));
    }
    if own_maps(m, field)?.is_none() && !userns {
        return Err(config(
            field,
            "idmap without uidMappings and gidMappings takes the container's user namespace \
             mapping, but linux.namespaces has no user namespace",
        ));
    }
    Ok(())
}

/// User namespaces made or opened for the mappings, shared by the mounts
/// that use the same one.
struct Namespaces<'a> {
    container: ContainerUserns<'a>,
    made: Vec<(String, String, OwnedFd)>,
    joined: Option<OwnedFd>,
}

impl Namespaces<'_> {
    fn for_maps(&mut self, maps: Option<(String, String)>) -> Result<&OwnedFd, SysError> {
        let (uid, gid) = match (maps, &self.container) {
            (Some(m), _) => m,
            (None, ContainerUserns::New { uid_map, gid_map }) => {
                (uid_map.to_string(), gid_map.to_string())
            }
            (None, ContainerUserns::Join(path)) => {
                if self.joined.is_none() {
                    let fd = open(*path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .ctx_at("open user namespace", path)?;
                    self.joined = Some(fd);
                }
                return self
                    .joined
                    .as_ref()
                    .ok_or(SysError::new("user namespace", Errno::EBADF));
            }
            // `check` refused this case.
            (None, ContainerUserns::None) => {
                return Err(SysError::new(
                    "id mapping without a user namespace",
                    Errno::EINVAL,
                ));
            }
        };
        let at = match self
            .made
            .iter()
            .position(|(u, g, _)| *u == uid && *g == gid)
        {
            Some(i) => i,
            None => {
                let fd = crate::namespaces::userns_with_maps(&uid, &gid)?;
                self.made.push((uid, gid, fd));
                self.made.len() - 1
            }
        };
        Ok(&self.made[at].2)
    }
}

/// Make the detached id-mapped tree of every id-mapped entry of `mounts`
/// (parent side, before the clone). Relative sources are relative to
/// `bundle`.
pub fn prepare(
    spec: &Spec,
    bundle: &Path,
    userns: ContainerUserns,
) -> Result<IdmappedTrees, RootfsError> {
    let mut trees = IdmappedTrees::default();
    let has_userns = !matches!(userns, ContainerUserns::None);
    let mut ns = Namespaces {
        container: userns,
        made: Vec::new(),
        joined: None,
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let typ = m.typ().as_deref().filter(|t| !t.is_empty());
        let opts = parse_mount_options(typ, m.options().as_deref().unwrap_or(&[]));
        let Some(kind) = idmap_of(m, &opts) else {
            continue;
        };
        let field = format!("mounts[{i}]");
        check(m, &opts, &field, has_userns)?;
        if !nix::unistd::geteuid().is_root() {
            // Made on the host's mounts before the clone: that needs
            // CAP_SYS_ADMIN there.
            return Err(config(
                &field,
                "id-mapped mounts (\"idmap\", \"ridmap\", uidMappings) need a runtime running as root; not available rootless",
            ));
        }
        let at = RootfsError::at(&field);
        let userns_fd = ns.for_maps(own_maps(m, &field)?).map_err(at)?;
        let src = m
            .source()
            .as_deref()
            .ok_or_else(|| config(format!("{field}.source"), "a bind mount needs a source"))?;
        let src = bundle.join(src);
        let src_fd = open(&src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .ctx_at("open bind source", &src)
            .map_err(at)?;
        let tree = clone_tree(&src_fd, opts.flags.contains(MsFlags::MS_REC), &src).map_err(at)?;
        set_idmap(&tree, userns_fd, kind == Idmap::Recursive, &src).map_err(|e| match e.errno {
            Errno::EINVAL => config(
                &field,
                format!("{e} (does its filesystem support id-mapped mounts?)"),
            ),
            // Root of a user namespace (rootless podman runs us so): the
            // kernel id-maps only a filesystem mounted in a namespace we
            // are privileged over, never the host's.
            Errno::EPERM if crate::rootless::in_user_namespace() => config(
                &field,
                format!(
                    "{e}: id-mapping needs CAP_SYS_ADMIN in the user namespace that mounted \
                     the source's filesystem, and this runtime runs in a user namespace \
                     (rootless) that did not mount it (a host filesystem); only a \
                     filesystem mounted inside that user namespace can be id-mapped"
                ),
            ),
            _ => at(e),
        })?;
        trees.0.push((i, tree));
    }
    Ok(trees)
}

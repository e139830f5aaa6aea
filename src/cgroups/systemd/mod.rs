//! The systemd cgroup driver (`--systemd-cgroup`, `--cgroup-manager
//! systemd`): the container's cgroup is a transient unit that systemd makes
//! over D-Bus, as runc does (docs/systemd.md there).
//!
//! - The unit (`runc-<id>.scope` by default, see unit.rs) is started with
//!   StartTransientUnit once the init exists (its pid goes in PIDs=), with
//!   Delegate=yes, DefaultDependencies=no, the accounting runc turns on, the
//!   resources systemd models (props.rs) and the `org.systemd.property.*`
//!   annotations (gvariant.rs); capsa waits for the job's JobRemoved before
//!   the init goes on. Then every resource is written to the cgroup files
//!   too (the cgroupfs code), which covers what systemd does not model.
//! - A cgroupsPath naming a `.slice` makes a slice unit: systemd takes no
//!   PIDs= there, so capsa moves the init into the slice's cgroup itself
//!   once the job is done (Cgroup::place).
//! - On v2, systemd never enables hugetlb, rdma or misc below its slices;
//!   when the resources need one, capsa enables just that one down to the
//!   unit's parent (Cgroup::enable_unmanaged), as runc does.
//! - The unit's cgroup is where systemd puts it, `/<slice path>/<unit>`, in
//!   each hierarchy systemd manages; in the v1 hierarchies it does not
//!   (cpuset, freezer, net_cls, ...) capsa makes that directory itself and
//!   places the init there, as runc does, and removes it on delete. The
//!   resulting `Cgroup` is an ordinary one for every other verb (state, ps,
//!   events, pause, exec, kill); `update` also sets the unit's properties,
//!   and delete stops the unit (StopUnit, JobRemoved, ResetFailedUnit).
//! - The unit name is in the container's cgroup plan (cgroup.json) before
//!   the unit is started, so that `delete --force` after a killed create
//!   stops it.
//! - The D-Bus client (dbus.rs, wire.rs) is capsa's own: see dbus.rs.
//! - Rootless (runc's and crun's way): the unit is made by the user's own
//!   systemd over the session bus ($DBUS_SESSION_BUS_ADDRESS, else
//!   $XDG_RUNTIME_DIR/bus), authenticated as the caller's uid on the host
//!   (root of a user namespace, as under podman, is the user outside it);
//!   the default slice is user.slice, and the unit's cgroup is below the
//!   user manager's own (its ControlGroup, /user.slice/user-UID.slice/
//!   user@UID.service). cgroup v2 only, as in runc: on v1 the user cannot
//!   be delegated anything. No device rules (the user manager cannot
//!   attach BPF programs, and the user reaches only its own devices).

pub mod dbus;
pub mod gvariant;
pub mod props;
pub mod unit;
pub mod wire;

use std::time::Duration;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::hierarchy::{Hierarchy, Kind};
use dbus::{Call, Connection, DbusError};
use props::Prop;
pub use unit::UnitName;
use wire::Value;

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error(
        "the systemd cgroup driver (--systemd-cgroup, --cgroup-manager systemd) needs a host booted with systemd and its D-Bus, and this host has no /run/systemd/system: use the cgroupfs driver instead (drop --systemd-cgroup; Docker native.cgroupdriver=cgroupfs, containerd SystemdCgroup = false, podman cgroup_manager = \"cgroupfs\")"
    )]
    NotBooted,
    #[error(
        "the systemd cgroup driver for a rootless container needs cgroup v2 (a pure unified hierarchy, where the user's systemd can delegate a cgroup): this host runs cgroup v1; use the cgroupfs driver instead (drop --systemd-cgroup; podman cgroup_manager = \"cgroupfs\")"
    )]
    RootlessV1,
    #[error(
        "the systemd cgroup driver for a rootless container talks to the user's own systemd over the session bus, and there is none: {why}; set DBUS_SESSION_BUS_ADDRESS (unix:path=/run/user/{uid}/bus), or XDG_RUNTIME_DIR to the directory of the user's bus socket (/run/user/{uid}), with a user manager running (a login session, or `loginctl enable-linger`); or drop --systemd-cgroup"
    )]
    NoSessionBus { why: String, uid: u32 },
    #[error("the user's systemd on the session bus {bus}: {op}: {err}")]
    UserManager {
        bus: String,
        op: &'static str,
        err: DbusError,
    },
    #[error("linux.cgroupsPath: {0}")]
    Path(String),
    /// A linux.resources field systemd cannot take as given.
    #[error("linux.resources.{field}: {msg}")]
    Resource { field: String, msg: String },
    #[error("{0}")]
    Annotation(String),
    #[error("systemd unit {unit}: {op}: {err}")]
    Bus {
        unit: String,
        op: &'static str,
        err: DbusError,
    },
    #[error("systemd unit {unit}: {op} job {job} ended with result {result:?}")]
    Job {
        unit: String,
        op: &'static str,
        job: String,
        result: String,
    },
    #[error("systemd unit {unit}: the init {pid} is in cgroup {got:?}, not in the unit's {want:?}")]
    Placement {
        unit: String,
        pid: i32,
        got: String,
        want: String,
    },
}

/// The container's unit, as recorded in its state and cgroup plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Systemd {
    pub unit: String,
    pub slice: String,
    /// The bus address the unit was made on.
    pub bus: String,
    /// systemd runs the unified hierarchy (its v2 property names).
    pub v2: bool,
    /// Rootless: the unit is the user's own systemd's, reached on the
    /// session bus as this uid (the caller's on the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<u32>,
    /// The manager's own cgroup ("/user.slice/user-1000.slice/user@1000.service"
    /// for a user manager; empty for the system one): its units' cgroups
    /// are below it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base: String,
    /// The properties to start the unit with (only in the creating process).
    #[serde(skip)]
    pub start: Vec<Prop>,
}

/// sd_booted(): the host runs systemd as its init.
pub fn booted() -> bool {
    std::fs::metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// systemd's own socket, for root when the system bus is down.
const SYSTEMD_PRIVATE: &str = "unix:path=/run/systemd/private";

/// The system bus: $DBUS_SYSTEM_BUS_ADDRESS, else the well-known socket.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".into())
}

/// The session bus of the user `uid`: $DBUS_SESSION_BUS_ADDRESS, else
/// $XDG_RUNTIME_DIR/bus if that socket exists (runc's order).
pub fn session_bus_address(uid: u32) -> Result<String, SystemdError> {
    if let Some(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return Ok(a);
    }
    let none = |why: String| SystemdError::NoSessionBus { why, uid };
    let xdg = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|x| !x.is_empty())
        .ok_or_else(|| {
            none("neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set".into())
        })?;
    let sock = std::path::Path::new(&xdg).join("bus");
    if std::fs::symlink_metadata(&sock).is_err() {
        return Err(none(format!(
            "DBUS_SESSION_BUS_ADDRESS is not set and {} does not exist",
            sock.display()
        )));
    }
    Ok(format!("unix:path={}", sock.display()))
}

/// Does systemd make (and place the unit's processes in) this hierarchy's
/// cgroup? The unified one and name=systemd always; on v1 the controllers
/// systemd supports there (a scope with Delegate=yes gets all of them).
pub fn manages(h: &Hierarchy) -> bool {
    match &h.kind {
        Kind::V2 => true,
        Kind::V1 { controllers, .. } => controllers.iter().any(|c| {
            matches!(
                c.as_str(),
                "name=systemd" | "cpu" | "cpuacct" | "blkio" | "memory" | "devices" | "pids"
            )
        }),
    }
}

impl Systemd {
    /// The unit for this container and the properties to start it with,
    /// checked before anything is made. `v2`: a pure cgroup v2 host.
    /// `rootless`: the user's own systemd makes it (asked here for its
    /// cgroup, so that a missing session bus is an error before anything
    /// exists).
    pub fn plan(spec: &Spec, id: &str, v2: bool, rootless: bool) -> Result<Systemd, SystemdError> {
        if !booted() {
            return Err(SystemdError::NotBooted);
        }
        let rootless = rootless || !nix::unistd::geteuid().is_root();
        if rootless && !v2 {
            return Err(SystemdError::RootlessV1);
        }
        let linux = spec.linux().as_ref();
        let path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned());
        let name = unit::parse(path.as_deref(), id, rootless).map_err(SystemdError::Path)?;
        // runc's Description names the container by cgroupsPath's name part.
        let short = match path.as_deref().map(|p| p.rsplit(':').next().unwrap_or(p)) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => id.to_owned(),
        };
        let mut start = base_props(&name, &short, v2);
        if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
            // No device rules rootless (see the module comment).
            let mut r = r.clone();
            if rootless {
                r.set_devices(None);
            }
            let r = &r;
            start.extend(
                props::resources(r, v2)
                    .map_err(|(field, msg)| SystemdError::Resource { field, msg })?,
            );
        }
        let mut annotations: Vec<(&String, &String)> =
            spec.annotations().iter().flatten().collect();
        annotations.sort();
        for (k, v) in annotations {
            if let Some(p) = gvariant::property(k, v) {
                start.push(p.map_err(SystemdError::Annotation)?);
            }
        }
        let mut sd = Systemd {
            unit: name.unit,
            slice: name.slice,
            bus: system_bus_address(),
            v2,
            user: None,
            base: String::new(),
            start,
        };
        if rootless {
            let uid = crate::rootless::host_uid();
            sd.bus = session_bus_address(uid)?;
            sd.user = Some(uid);
            sd.base = sd.manager_cgroup()?;
        }
        Ok(sd)
    }

    /// The user manager's own cgroup (its ControlGroup property).
    fn manager_cgroup(&self) -> Result<String, SystemdError> {
        let err = |op| {
            move |err| SystemdError::UserManager {
                bus: self.bus.clone(),
                op,
                err,
            }
        };
        let mut c = self.open().map_err(err("connect"))?;
        let body = manager_property(&mut c, "ControlGroup").map_err(err("Get ControlGroup"))?;
        let path = match body.first() {
            Some(Value::Variant(v)) => v.as_str(),
            _ => None,
        };
        match path {
            Some(p) if p.starts_with('/') => Ok(p.to_owned()),
            _ => Err(SystemdError::UserManager {
                bus: self.bus.clone(),
                op: "Get ControlGroup",
                err: DbusError::ReplyType(
                    "ControlGroup".into(),
                    format!("{body:?}"),
                    "an absolute cgroup path".into(),
                ),
            }),
        }
    }

    /// A connection to the unit's manager, as the uid it was made as.
    /// The system's manager is reached over the system bus, or, when that
    /// cannot be reached (dbus stopped, restarting, not yet started at
    /// boot), as root over systemd's private socket, as systemctl does: a
    /// container's unit does not depend on the bus daemon, and `delete
    /// --force` must clean up without it.
    fn open(&self) -> Result<Connection, DbusError> {
        match self.user {
            Some(uid) => Connection::open_as(&self.bus, uid),
            None => Connection::open(&self.bus).or_else(|e| {
                if !nix::unistd::geteuid().is_root() {
                    return Err(e);
                }
                Connection::open_direct(SYSTEMD_PRIVATE).map_err(|_| e)
            }),
        }
    }

    /// Put `pid` (the caller's) in the unit's cgroup through its manager
    /// (AttachProcessesToUnit): a rootless caller outside the user's
    /// delegated subtree may not move it there itself, and the user's
    /// systemd then asks the system's, which checks the process is the
    /// user's.
    pub fn attach(&self, pid: i32) -> Result<(), SystemdError> {
        let mut c = self.open().map_err(self.bus_err("AttachProcessesToUnit"))?;
        let pid = u32::try_from(pid).unwrap_or_default();
        manager_call(
            &mut c,
            "AttachProcessesToUnit",
            vec![
                Value::str(&self.unit),
                Value::str(""),
                Value::Array("u".into(), vec![Value::U32(pid)]),
            ],
            "",
        )
        .map(drop)
        .map_err(self.bus_err("AttachProcessesToUnit"))
    }

    /// The unit is a slice (a cgroupsPath naming `.slice`), not a scope.
    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }

    /// The unit's cgroup below each hierarchy's root (no leading '/').
    pub fn cgroup_rel(&self) -> Result<String, SystemdError> {
        let rel = UnitName {
            unit: self.unit.clone(),
            slice: self.slice.clone(),
        }
        .cgroup_rel()
        .map_err(SystemdError::Path)?;
        Ok(match self.base.trim_matches('/') {
            "" => rel,
            base => format!("{base}/{rel}"),
        })
    }

    fn bus_err(&self, op: &'static str) -> impl FnOnce(DbusError) -> SystemdError + '_ {
        move |err| SystemdError::Bus {
            unit: self.unit.clone(),
            op,
            err,
        }
    }

    fn connect(&self, op: &'static str) -> Result<Connection, SystemdError> {
        let mut c = self.open().map_err(self.bus_err(op))?;
        c.add_match(JOB_REMOVED_MATCH).map_err(self.bus_err(op))?;
        Ok(c)
    }

    /// Start the unit with `pid` in it and wait until systemd is done.
    pub fn start(&self, pid: i32) -> Result<(), SystemdError> {
        let mut c = self.connect("StartTransientUnit")?;
        let mut props = for_version(&mut c, self.start.clone());
        if !self.is_slice() {
            // After Slice=, where runc puts it.
            let at = props.len().min(2);
            let pid = u32::try_from(pid).unwrap_or_default();
            props.insert(
                at,
                prop_of("PIDs", Value::Array("u".into(), vec![Value::U32(pid)])),
            );
        }
        let args = vec![
            Value::str(&self.unit),
            Value::str("replace"),
            props_value(&props),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let mut retried = false;
        let job = loop {
            match manager_call(&mut c, "StartTransientUnit", args.clone(), "o") {
                Ok(job) => break job,
                // A failed unit of that name left behind: reset it and
                // retry once (runc does the same).
                Err(e)
                    if !retried
                        && e.remote_name() == Some("org.freedesktop.systemd1.UnitExists") =>
                {
                    retried = true;
                    let _ =
                        manager_call(&mut c, "ResetFailedUnit", vec![Value::str(&self.unit)], "");
                }
                Err(e) => return Err(self.bus_err("StartTransientUnit")(e)),
            }
        };
        let result = wait_job(&mut c, &job).map_err(self.bus_err("StartTransientUnit"))?;
        if result != "done" {
            let _ = manager_call(&mut c, "ResetFailedUnit", vec![Value::str(&self.unit)], "");
            return Err(SystemdError::Job {
                unit: self.unit.clone(),
                op: "start",
                job,
                result,
            });
        }
        Ok(())
    }

    /// Stop the unit and wait; a unit already gone is fine. A failed unit
    /// is reset so that systemd forgets it.
    pub fn stop(&self) -> Result<(), SystemdError> {
        let mut c = match self.connect("StopUnit") {
            Ok(c) => c,
            // The user's systemd has ended (its last session closed, or
            // user@UID.service stopped) and took its units and their
            // cgroups with it: nothing is left to stop, and delete --force
            // must still clean up.
            Err(_) if self.user.is_some() && !self.unit_cgroup_exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        let res = manager_call(
            &mut c,
            "StopUnit",
            vec![Value::str(&self.unit), Value::str("replace")],
            "o",
        );
        let out = match res {
            Ok(job) => match wait_job(&mut c, &job).map_err(self.bus_err("StopUnit"))? {
                // "done", or "canceled"/"skipped" for a unit stopping on its own.
                r if r == "done" || r == "skipped" || r == "canceled" => Ok(()),
                result => Err(SystemdError::Job {
                    unit: self.unit.clone(),
                    op: "stop",
                    job,
                    result,
                }),
            },
            Err(e) if e.remote_name() == Some(NO_SUCH_UNIT) => Ok(()),
            Err(e) => Err(self.bus_err("StopUnit")(e)),
        };
        let _ = manager_call(&mut c, "ResetFailedUnit", vec![Value::str(&self.unit)], "");
        out
    }

    /// Whether the unit's cgroup is still there (true when unsure).
    fn unit_cgroup_exists(&self) -> bool {
        let Ok(rel) = self.cgroup_rel() else {
            return true;
        };
        let Ok(hosts) = super::hierarchy::host() else {
            return true;
        };
        hosts
            .iter()
            .filter(|h| manages(h))
            .any(|h| std::fs::symlink_metadata(h.mount.join(&rel)).is_ok())
    }

    /// `update`: set the unit's properties at runtime, returning what they
    /// were (as far as systemd tells), for `set_properties` to put back if
    /// the rest of the update fails: an update is all or nothing.
    pub fn set_properties_saving(&self, props: &[Prop]) -> Result<Vec<Prop>, SystemdError> {
        if props.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.open().map_err(self.bus_err("SetUnitProperties"))?;
        let old = self.current(&mut c, props);
        let props = for_version(&mut c, props.to_vec());
        manager_call(
            &mut c,
            "SetUnitProperties",
            vec![
                Value::str(&self.unit),
                Value::Bool(true),
                props_value(&props),
            ],
            "",
        )
        .map_err(self.bus_err("SetUnitProperties"))?;
        Ok(old)
    }

    /// The unit's current values of the properties `props` names (each
    /// once; those systemd cannot tell are left out). DeviceAllow appends
    /// when set, so its old list is preceded by an empty one.
    fn current(&self, c: &mut Connection, props: &[Prop]) -> Vec<Prop> {
        let Ok(path) = manager_call(c, "GetUnit", vec![Value::str(&self.unit)], "o") else {
            return Vec::new();
        };
        let iface = if self.unit.ends_with(".slice") {
            "org.freedesktop.systemd1.Slice"
        } else {
            "org.freedesktop.systemd1.Scope"
        };
        let mut old: Vec<Prop> = Vec::new();
        for (name, _) in props {
            if old.iter().any(|(n, _)| n == name) {
                continue;
            }
            let got = c.call(
                &Call {
                    dest: "org.freedesktop.systemd1",
                    path: &path,
                    iface: "org.freedesktop.DBus.Properties",
                    member: "Get",
                    args: vec![Value::str(iface), Value::str(name)],
                },
                "v",
            );
            if let Ok(body) = got
                && let Some(Value::Variant(v)) = body.into_iter().next()
            {
                if name == "DeviceAllow" {
                    old.push(prop_of(name, Value::Array("(ss)".into(), vec![])));
                }
                old.push((name.clone(), *v));
            }
        }
        old
    }

    /// `update`: set the unit's properties at runtime.
    pub fn set_properties(&self, props: &[Prop]) -> Result<(), SystemdError> {
        if props.is_empty() {
            return Ok(());
        }
        let mut c = self.open().map_err(self.bus_err("SetUnitProperties"))?;
        let props = for_version(&mut c, props.to_vec());
        manager_call(
            &mut c,
            "SetUnitProperties",
            vec![
                Value::str(&self.unit),
                Value::Bool(true),
                props_value(&props),
            ],
            "",
        )
        .map(drop)
        .map_err(self.bus_err("SetUnitProperties"))
    }
}

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const JOB_REMOVED_MATCH: &str = "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved',path='/org/freedesktop/systemd1'";
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

fn prop_of(name: &str, v: Value) -> Prop {
    (name.to_owned(), v)
}

fn props_value(props: &[Prop]) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .iter()
            .map(|(n, v)| Value::Struct(vec![Value::str(n), Value::Variant(Box::new(v.clone()))]))
            .collect(),
    )
}

/// runc's fixed properties: Description, Slice= (a scope) or Wants= (a
/// slice), Delegate=yes (a scope), accounting, DefaultDependencies=no.
fn base_props(name: &UnitName, short: &str, v2: bool) -> Vec<Prop> {
    let mut p = vec![prop_of(
        "Description",
        Value::str(format!("libcontainer container {short}")),
    )];
    if name.is_slice() {
        p.push(prop_of(
            "Wants",
            Value::Array("s".into(), vec![Value::str(&name.slice)]),
        ));
    } else {
        p.push(prop_of("Slice", Value::str(&name.slice)));
        p.push(prop_of("Delegate", Value::Bool(true)));
    }
    let io = if v2 {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    for acct in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        p.push(prop_of(acct, Value::Bool(true)));
    }
    p.push(prop_of("DefaultDependencies", Value::Bool(false)));
    p
}

/// Properties and the systemd version that introduced them: an older
/// systemd refuses the whole unit for one it does not know, so runc leaves
/// them out there (the cgroup files still get the values).
const SINCE: &[(&str, u32)] = &[
    ("CPUQuotaPeriodUSec", 242),
    ("AllowedCPUs", 244),
    ("AllowedMemoryNodes", 244),
];

/// `props` without those this systemd is too old for (asked only if one
/// is there; an unknown version keeps them all).
fn for_version(c: &mut Connection, props: Vec<Prop>) -> Vec<Prop> {
    if !props.iter().any(|(n, _)| SINCE.iter().any(|(s, _)| s == n)) {
        return props;
    }
    match systemd_version(c) {
        Some(v) => drop_newer(props, v),
        None => props,
    }
}

fn drop_newer(mut props: Vec<Prop>, version: u32) -> Vec<Prop> {
    props.retain(|(n, _)| !SINCE.iter().any(|(s, since)| s == n && version < *since));
    props
}

/// The Manager's Version property ("252.38-1~deb12u1") as its number.
fn systemd_version(c: &mut Connection) -> Option<u32> {
    let body = manager_property(c, "Version").ok()?;
    let Some(Value::Variant(v)) = body.first() else {
        return None;
    };
    version_number(v.as_str()?)
}

/// runc's systemdVersionAtoi: the leading number of "v245.4-1.fc32", "245".
fn version_number(text: &str) -> Option<u32> {
    let t = text.trim_start_matches(['"', 'v']);
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    t[..end].parse().ok()
}

/// A call on systemd's Manager object.
fn manager_call(
    c: &mut Connection,
    member: &str,
    args: Vec<Value>,
    want: &str,
) -> Result<String, DbusError> {
    let body = c.call(
        &Call {
            dest: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1",
            iface: "org.freedesktop.systemd1.Manager",
            member,
            args,
        },
        want,
    )?;
    Ok(body
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

/// Properties.Get of the Manager's property `name`: its variant.
fn manager_property(c: &mut Connection, name: &str) -> Result<Vec<Value>, DbusError> {
    c.call(
        &Call {
            dest: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1",
            iface: "org.freedesktop.DBus.Properties",
            member: "Get",
            args: vec![
                Value::str("org.freedesktop.systemd1.Manager"),
                Value::str(name),
            ],
        },
        "v",
    )
}

/// Wait for JobRemoved(id, job, unit, result) of `job`; its result.
fn wait_job(c: &mut Connection, job: &str) -> Result<String, DbusError> {
    c.wait_signal(JOB_TIMEOUT, &format!("JobRemoved of {job}"), |m| {
        if m.member.as_deref() != Some("JobRemoved") {
            return None;
        }
        (m.body.get(1).and_then(Value::as_str) == Some(job)).then(|| {
            m.body
                .get(3)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_properties_like_runc() {
        let scope = UnitName {
            unit: "runc-c1.scope".into(),
            slice: "system.slice".into(),
        };
        let names: Vec<String> = base_props(&scope, "c1", true)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "Description",
                "Slice",
                "Delegate",
                "MemoryAccounting",
                "CPUAccounting",
                "IOAccounting",
                "TasksAccounting",
                "DefaultDependencies"
            ]
        );
        let slice = UnitName {
            unit: "kubepods-pod1.slice".into(),
            slice: "kubepods.slice".into(),
        };
        let p = base_props(&slice, "kubepods-pod1.slice", false);
        assert!(p.iter().any(|(n, _)| n == "Wants"));
        assert!(p.iter().any(|(n, _)| n == "BlockIOAccounting"));
        assert!(!p.iter().any(|(n, _)| n == "Delegate" || n == "Slice"));
    }

    #[test]
    fn versions() {
        for (text, want) in [
            ("252.38-1~deb12u1", Some(252)),
            ("v245.4-1.fc32", Some(245)),
            ("\"v245-1.fc32\"", Some(245)),
            ("239", Some(239)),
            ("", None),
            ("abc", None),
        ] {
            assert_eq!(version_number(text), want, "{text}");
        }
        let props = vec![
            prop_of("CPUQuotaPeriodUSec", Value::U64(1)),
            prop_of("AllowedCPUs", Value::Array("y".into(), vec![])),
            prop_of("MemoryMax", Value::U64(1)),
        ];
        let names = |p: Vec<Prop>| p.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(drop_newer(props.clone(), 241)), ["MemoryMax"]);
        assert_eq!(
            names(drop_newer(props.clone(), 243)),
            ["CPUQuotaPeriodUSec", "MemoryMax"]
        );
        assert_eq!(names(drop_newer(props, 252)).len(), 3);
    }

    #[test]
    fn managed_hierarchies() {
        let v1 = |c: &[&str]| Hierarchy {
            mount: "/x".into(),
            kind: Kind::V1 {
                controllers: c.iter().map(|s| s.to_string()).collect(),
                noprefix: false,
            },
        };
        assert!(manages(&v1(&["cpu", "cpuacct"])));
        assert!(manages(&v1(&["name=systemd"])));
        assert!(!manages(&v1(&["cpuset"])));
        assert!(!manages(&v1(&["freezer"])));
        assert!(!manages(&v1(&["net_cls", "net_prio"])));
        assert!(manages(&Hierarchy {
            mount: "/sys/fs/cgroup".into(),
            kind: Kind::V2
        }));
    }
}

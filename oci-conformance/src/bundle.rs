//! A bundle under test: its directory, its config.json (edited as JSON before `create`),
//! and the checker's `key=value` report read back from the container's stdout.

use crate::harness::{Verdict, fail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap_or("")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// Set the checker operations the container runs.
    pub fn args(&mut self, ops: &[&str]) {
        let mut a = vec![json!("/checker")];
        a.extend(ops.iter().map(|o| json!(o)));
        self.config["process"]["args"] = Value::Array(a);
    }
    /// Set a config field by dotted path (`linux.resources.pids.limit`), creating the objects
    /// on the way. Keys that contain dots (sysctl names, annotations) go in whole objects.
    pub fn set(&mut self, path: &str, v: Value) {
        let mut cur = &mut self.config;
        for k in path.split('.') {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = &mut cur[k];
        }
        *cur = v;
    }
    /// Remove a field by dotted path, if present.
    pub fn unset(&mut self, path: &str) {
        let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
        let mut cur = &mut self.config;
        for k in parent.split('.').filter(|k| !k.is_empty()) {
            cur = &mut cur[k];
        }
        if let Some(o) = cur.as_object_mut() {
            o.remove(last);
        }
    }
    pub fn add_mount(&mut self, m: Value) {
        if let Some(a) = self.config["mounts"].as_array_mut() {
            a.push(m);
        }
    }
    pub fn remove_mount(&mut self, dest: &str) {
        if let Some(a) = self.config["mounts"].as_array_mut() {
            a.retain(|m| m["destination"] != dest);
        }
    }
    pub fn remove_ns(&mut self, t: &str) {
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != t);
        }
    }
    pub fn add_ns(&mut self, t: &str, path: Option<&str>) {
        self.remove_ns(t);
        let mut n = json!({"type": t});
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.push(n);
        }
    }
    /// A user namespace mapping container ids 0-65535 to host 100000-165535. sysfs and
    /// mqueue need namespaces owned by it, so those mounts go.
    pub fn userns(&mut self) {
        self.add_ns("user", None);
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self.set("linux.uidMappings", map.clone());
        self.set("linux.gidMappings", map);
        self.remove_mount("/sys");
        self.remove_mount("/dev/mqueue");
    }
    pub fn write(&self) -> Result<(), Verdict> {
        let s = serde_json::to_string_pretty(&self.config)
            .map_err(|e| Verdict::Fail(format!("config: {e}")))?;
        fs::write(self.dir.join("config.json"), s)
            .map_err(|e| Verdict::Fail(format!("write config.json: {e}")))
    }
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }
}

/// The default configuration: close to what `runc spec` emits, non-terminal, running the checker.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/checker"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "oci-conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ]
        }
    })
}

/// Make a config rootless the way `runc spec --rootless` does (runc's specconv.ToRootless):
/// a user namespace mapping container root to the user's own uid and gid (one id each), no
/// network namespace, /sys bound from the host (a sysfs mount needs a network namespace the
/// user namespace owns), no uid=/gid= mount options (those ids are not mapped), no
/// `linux.resources` (an unprivileged user has no cgroup of its own to put limits in).
pub fn to_rootless(c: &mut Value, uid: u32, gid: u32) {
    if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
        a.retain(|n| n["type"] != "network" && n["type"] != "user");
        a.push(json!({"type": "user"}));
    }
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(ms) = c["mounts"].as_array_mut() {
        for m in ms.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            } else if let Some(o) = m["options"].as_array_mut() {
                o.retain(|x| {
                    let x = x.as_str().unwrap_or("");
                    !x.starts_with("uid=") && !x.starts_with("gid=")
                });
            }
        }
    }
    if let Some(l) = c["linux"].as_object_mut() {
        l.remove("resources");
    }
}

/// Parsed checker output: `key=value` lines (and the raw text, for messages).
pub struct Kv(pub HashMap<String, String>, pub String);

impl Kv {
    pub fn parse(s: &str) -> Kv {
        let mut m = HashMap::new();
        for l in s.lines() {
            if let Some((k, v)) = l.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
        Kv(m, s.to_string())
    }
    pub fn get(&self, k: &str) -> Result<&str, Verdict> {
        match self.0.get(k) {
            Some(v) => Ok(v.as_str()),
            None => fail(format!(
                "checker reported no {k:?}; output: {}",
                trunc(&self.1, 400)
            )),
        }
    }
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.as_str())
    }
}

pub fn trunc(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    t.replace('\n', " | ")
}

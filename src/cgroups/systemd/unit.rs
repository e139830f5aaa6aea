//! linux.cgroupsPath in runc's systemd form, `slice:prefix:name`, to the
//! unit capsa makes and the cgroup path systemd gives it. Pure.
//!
//! runc's rules (docs/systemd.md), mirrored:
//! - empty or absent cgroupsPath: as if `:runc:<id>` was given. capsa keeps
//!   the prefix "runc" rather than "capsa": engines and tools look for
//!   `runc-<id>.scope` (containerd, `systemctl status runc-*`), and a runtime
//!   that replaces runc should leave the same units behind.
//! - empty slice: `system.slice` (`user.slice` for a rootless container on
//!   the user's own systemd); `-.slice` (written `-` or `-.slice`) is the
//!   root slice.
//! - a name ending in `.slice` makes that slice unit (prefix ignored);
//!   otherwise the unit is the scope `<prefix>-<name>.scope` (with an empty
//!   prefix runc makes `-<name>.scope`; so does capsa).
//! - a slice `a-b-c.slice` lives at /a.slice/a-b.slice/a-b-c.slice.

use serde::{Deserialize, Serialize};

/// The unit a container gets, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitName {
    /// `runc-<id>.scope`, or a slice name.
    pub unit: String,
    /// The parent slice (Slice= of a scope, Wants= of a slice).
    pub slice: String,
}

impl UnitName {
    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }

    /// The unit's cgroup below the hierarchy root, without a leading '/'.
    pub fn cgroup_rel(&self) -> Result<String, String> {
        let mut p = expand_slice(&self.slice)?;
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(&self.unit);
        Ok(p)
    }
}

/// The default scope prefix (see the module comment).
pub const DEFAULT_PREFIX: &str = "runc";

/// Parse linux.cgroupsPath (None or "" = the default for `id`).
/// `rootless`: the default slice is user.slice.
pub fn parse(cgroups_path: Option<&str>, id: &str, rootless: bool) -> Result<UnitName, String> {
    let default_slice = if rootless {
        "user.slice"
    } else {
        "system.slice"
    };
    let path = cgroups_path.unwrap_or("");
    let (slice, prefix, name) = if path.is_empty() {
        ("", DEFAULT_PREFIX, id)
    } else {
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(format!(
                "{path:?} is not slice:prefix:name, the form the systemd cgroup driver takes (e.g. system.slice:docker:<id>)"
            ));
        };
        (slice, prefix, name)
    };
    let slice = match slice {
        "" => default_slice.to_owned(),
        "-" => "-.slice".to_owned(),
        s => s.to_owned(),
    };
    expand_slice(&slice)?;
    if name.is_empty() {
        return Err(format!("{path:?} has an empty name (slice:prefix:name)"));
    }
    let unit = if name.ends_with(".slice") {
        expand_slice(name)?;
        name.to_owned()
    } else {
        format!("{prefix}-{name}.scope")
    };
    check_unit_chars(&unit)?;
    Ok(UnitName { unit, slice })
}

/// systemd's unit name characters: ASCII letters, digits and ":-_.\\";
/// at most 255 bytes.
fn check_unit_chars(unit: &str) -> Result<(), String> {
    if unit.len() > 255 {
        return Err(format!(
            "unit name {unit:?} is longer than systemd's 255 bytes"
        ));
    }
    if let Some(c) = unit
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\".contains(*c)))
    {
        return Err(format!(
            "unit name {unit:?} contains {c:?}, which systemd does not allow in unit names"
        ));
    }
    Ok(())
}

/// runc's ExpandSlice: `a-b.slice` -> `a.slice/a-b.slice`; `-.slice` is
/// the root (""). Errors say what is wrong with the name.
pub fn expand_slice(slice: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid slice name {slice:?}: {why}"));
    let Some(stem) = slice.strip_suffix(".slice") else {
        return bad("it must end in \".slice\"");
    };
    if stem.is_empty() {
        return bad("it must be more than \".slice\"");
    }
    if slice.contains('/') {
        return bad("it must not contain '/' (nest slices with '-': a-b.slice)");
    }
    check_unit_chars(slice)?;
    if stem == "-" {
        return Ok(String::new());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return bad("it has an empty component (\"--\", or '-' at its start or end)");
        }
        if !path.is_empty() {
            path.push('/');
        }
        prefix.push_str(part);
        path.push_str(&prefix);
        path.push_str(".slice");
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: Option<&str>, id: &str) -> (String, String, String) {
        let u = parse(path, id, false).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let rel = u.cgroup_rel().unwrap_or_else(|e| panic!("{e}"));
        (u.unit, u.slice, rel)
    }

    #[test]
    fn runc_forms() {
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            ok(None, "c1"),
            s(
                "runc-c1.scope",
                "system.slice",
                "system.slice/runc-c1.scope"
            )
        );
        assert_eq!(ok(Some(""), "c1"), ok(None, "c1"));
        assert_eq!(
            ok(Some("system.slice:docker:abc"), "id"),
            s(
                "docker-abc.scope",
                "system.slice",
                "system.slice/docker-abc.scope"
            )
        );
        assert_eq!(
            ok(Some(":cri-containerd:abc"), "id"),
            s(
                "cri-containerd-abc.scope",
                "system.slice",
                "system.slice/cri-containerd-abc.scope"
            )
        );
        assert_eq!(
            ok(
                Some("kubepods-besteffort-pod12.slice:cri-containerd:abc"),
                "id"
            ),
            s(
                "cri-containerd-abc.scope",
                "kubepods-besteffort-pod12.slice",
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
            )
        );
        // A name that is a slice makes that slice; the prefix is ignored.
        assert_eq!(
            ok(Some("kubepods.slice:x:kubepods-burstable.slice"), "id"),
            s(
                "kubepods-burstable.slice",
                "kubepods.slice",
                "kubepods.slice/kubepods-burstable.slice"
            )
        );
        // Root slice, spelled either way; empty prefix as runc.
        assert_eq!(
            ok(Some("-:p:n"), "id"),
            s("p-n.scope", "-.slice", "p-n.scope")
        );
        assert_eq!(ok(Some("-.slice:p:n"), "id").2, "p-n.scope");
        assert_eq!(ok(Some("::n"), "id").0, "-n.scope");
        let rootless = parse(None, "c", true).ok().map(|u| u.slice);
        assert_eq!(rootless.as_deref(), Some("user.slice"));
    }

    #[test]
    fn bad_forms() {
        for (path, want) in [
            ("/a/b", "not slice:prefix:name"),
            ("a:b", "not slice:prefix:name"),
            ("a:b:c:d", "not slice:prefix:name"),
            ("system.slice:p:", "empty name"),
            ("system:p:n", "must end in \".slice\""),
            (".slice:p:n", "more than"),
            ("a--b.slice:p:n", "empty component"),
            ("-a.slice:p:n", "empty component"),
            ("a-.slice:p:n", "empty component"),
            ("a/b.slice:p:n", "'/'"),
            ("system.slice:p:n/x", "'/'"),
            ("system.slice:p q:n", "does not allow"),
            ("system.slice:p:bad--.slice", "empty component"),
        ] {
            let err = parse(Some(path), "id", false).err().unwrap_or_default();
            assert!(err.contains(want), "{path:?}: {err}");
        }
        let long = format!("system.slice:p:{}", "x".repeat(260));
        assert!(parse(Some(&long), "id", false).is_err());
    }

    #[test]
    fn slices_expand() {
        assert_eq!(expand_slice("-.slice").as_deref(), Ok(""));
        assert_eq!(expand_slice("a.slice").as_deref(), Ok("a.slice"));
        assert_eq!(
            expand_slice("a-b-c.slice").as_deref(),
            Ok("a.slice/a-b.slice/a-b-c.slice")
        );
        assert!(expand_slice("a").is_err());
    }
}

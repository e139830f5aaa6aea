//! linux.resources as systemd unit properties, runc's translation
//! (libcontainer/cgroups/systemd v1.go/v2.go, docs/systemd.md): what
//! systemd models goes to the unit; capsa writes every resource to the
//! cgroup files afterwards as well (as runc's fs fallback does), so what
//! systemd does not model still lands. Pure, apart from /proc/devices and
//! /dev/{char,block} lookups for device rules (runc's).

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

use super::wire::Value;
use crate::cgroups::devices::Rule;
use crate::cgroups::resources::{blkio_to_io_weight, shares_to_weight, swap_to_v2};

/// A unit property: name and value.
pub type Prop = (String, Value);

fn prop(name: &str, v: Value) -> Prop {
    (name.to_owned(), v)
}

/// An i64 limit as systemd's u64, where -1 (or any negative) is infinity.
fn limit_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The kernel's default CPU period (runc's defCPUQuotaPeriod).
const DEFAULT_PERIOD: u64 = 100_000;

/// runc's addCpuQuota: CPUQuotaPeriodUSec if a period is given, and
/// CPUQuotaPerSecUSec (rounded up to whole 10 ms, as systemd keeps whole
/// percents) if either is.
fn cpu_quota(props: &mut Vec<Prop>, quota: i64, period: u64) {
    if period != 0 {
        props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = u64::MAX;
        if let Ok(q) = u64::try_from(quota)
            && q > 0
        {
            let p = if period == 0 { DEFAULT_PERIOD } else { period };
            per_sec = q.saturating_mul(1_000_000) / p;
            if !per_sec.is_multiple_of(10_000) {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
            }
        }
        props.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
}

/// "0-3,7" to systemd's CPU/node bitmask: byte 0 holds 0..7, bit 0 first.
pub fn range_to_bits(list: &str) -> Result<Vec<u8>, String> {
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.trim().split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|&n| n < 1 << 16)
                .ok_or_else(|| format!("{list:?}: {s:?} is not a CPU or node number"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("{list:?}: range {part:?} goes backwards"));
        }
        for i in a..=b {
            if bytes.len() <= i / 8 {
                bytes.resize(i / 8 + 1, 0);
            }
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(bytes)
}

fn bits_value(bits: Vec<u8>) -> Value {
    Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect())
}

/// The resource properties for `r`; `v2`: systemd runs the unified
/// hierarchy (its v2 property names), else the legacy names.
/// Errors name the field below linux.resources.
pub fn resources(r: &LinuxResources, v2: bool) -> Result<Vec<Prop>, (String, String)> {
    let mut props = Vec::new();
    if let Some(d) = r.devices() {
        let rules =
            crate::cgroups::devices::rules(d).map_err(|e| (String::new(), e.to_string()))?;
        props.extend(devices(&rules));
    }
    let (limit, reservation, swap) = r.memory().as_ref().map_or((0, 0, 0), |m| {
        (
            m.limit().unwrap_or(0),
            m.reservation().unwrap_or(0),
            m.swap().unwrap_or(0),
        )
    });
    let (shares, quota, period, cpus, mems) = r.cpu().as_ref().map_or((0, 0, 0, None, None), |c| {
        (
            c.shares().unwrap_or(0),
            c.quota().unwrap_or(0),
            c.period().unwrap_or(0),
            c.cpus().clone().filter(|s| !s.trim().is_empty()),
            c.mems().clone().filter(|s| !s.trim().is_empty()),
        )
    });
    if limit != 0 {
        let name = if v2 { "MemoryMax" } else { "MemoryLimit" };
        props.push(prop(name, Value::U64(limit_u64(limit))));
    }
    if v2 {
        if reservation != 0 {
            props.push(prop("MemoryLow", Value::U64(limit_u64(reservation))));
        }
        let swap = swap_to_v2(limit, swap).map_err(|e| ("memory.swap".to_owned(), e))?;
        if swap != 0 {
            props.push(prop("MemorySwapMax", Value::U64(limit_u64(swap))));
        }
        if shares != 0 {
            props.push(prop("CPUWeight", Value::U64(shares_to_weight(shares))));
        }
    } else if shares != 0 {
        props.push(prop("CPUShares", Value::U64(shares)));
    }
    cpu_quota(&mut props, quota, period);
    if let Some(b) = r.block_io() {
        block_io(&mut props, b, v2);
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        if l > 0 || l == -1 {
            props.push(prop("TasksMax", Value::U64(limit_u64(l))));
        }
    }
    for (field, value, name) in [
        ("cpu.cpus", cpus, "AllowedCPUs"),
        ("cpu.mems", mems, "AllowedMemoryNodes"),
    ] {
        if let Some(v) = value {
            let bits = range_to_bits(&v).map_err(|e| (field.to_owned(), e))?;
            props.push(prop(name, bits_value(bits)));
        }
    }
    if v2 && let Some(u) = r.unified() {
        // Sorted, so the property order does not depend on the map's.
        let mut keys: Vec<&String> = u.keys().collect();
        keys.sort();
        for k in keys {
            let field = format!("unified.{k:?}");
            unified(&mut props, k, u[k].trim()).map_err(|e| (field, e))?;
        }
    }
    Ok(props)
}

/// linux.resources.blockIO as systemd's IO properties (v2: IO*, weights
/// converted from blkio's scale as for the files) or BlockIO* (v1, which
/// has no IOPS properties). A device is named by its /dev/block/M:m node;
/// one that does not exist is left to the files, as device rules are.
fn block_io(props: &mut Vec<Prop>, b: &LinuxBlockIo, v2: bool) {
    let weight = |w: u16| {
        if v2 {
            blkio_to_io_weight(w)
        } else {
            u64::from(w)
        }
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        let name = if v2 { "IOWeight" } else { "BlockIOWeight" };
        props.push(prop(name, Value::U64(weight(w))));
    }
    let node = |major: i64, minor: i64| {
        let p = format!("/dev/block/{major}:{minor}");
        std::path::Path::new(&p).exists().then_some(p)
    };
    let entry = |path: String, n: u64| Value::Struct(vec![Value::Str(path), Value::U64(n)]);
    if let Some(devs) = b.weight_device() {
        let list: Vec<Value> = devs
            .iter()
            .filter_map(|d| {
                let w = d.weight().filter(|&w| w != 0)?;
                Some(entry(node(d.major(), d.minor())?, weight(w)))
            })
            .collect();
        if !list.is_empty() {
            let name = if v2 {
                "IODeviceWeight"
            } else {
                "BlockIODeviceWeight"
            };
            props.push(prop(name, Value::Array("(st)".into(), list)));
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "IOReadBandwidthMax",
            Some("BlockIOReadBandwidth"),
        ),
        (
            b.throttle_write_bps_device(),
            "IOWriteBandwidthMax",
            Some("BlockIOWriteBandwidth"),
        ),
        (b.throttle_read_iops_device(), "IOReadIOPSMax", None),
        (b.throttle_write_iops_device(), "IOWriteIOPSMax", None),
    ];
    for (devs, v2_name, v1_name) in throttles {
        let Some(name) = (if v2 { Some(v2_name) } else { v1_name }) else {
            continue;
        };
        let list: Vec<Value> = devs
            .iter()
            .flatten()
            .filter_map(|d| Some(entry(node(d.major(), d.minor())?, d.rate())))
            .collect();
        if !list.is_empty() {
            props.push(prop(name, Value::Array("(st)".into(), list)));
        }
    }
}

/// runc's unifiedResToSystemdProps: the unified keys systemd models.
fn unified(props: &mut Vec<Prop>, key: &str, v: &str) -> Result<(), String> {
    let num = |v: &str| -> Result<u64, String> {
        if v == "max" {
            return Ok(u64::MAX);
        }
        v.parse()
            .map_err(|_| format!("{v:?} is not a number or \"max\""))
    };
    match key {
        "cpu.max" => {
            let f: Vec<&str> = v.split_whitespace().collect();
            if f.is_empty() || f.len() > 2 {
                return Err(format!("{v:?} is not \"quota [period]\""));
            }
            let quota = if f[0] == "max" {
                0
            } else {
                f[0].parse::<i64>()
                    .map_err(|_| format!("quota {:?} is not a number", f[0]))?
            };
            let period = match f.get(1) {
                Some(p) => p
                    .parse::<u64>()
                    .map_err(|_| format!("period {p:?} is not a number"))?,
                None => DEFAULT_PERIOD,
            };
            cpu_quota(props, quota, period);
        }
        "cpu.weight" => {
            let n: u64 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
            props.push(prop("CPUWeight", Value::U64(n)));
        }
        "cpuset.cpus" | "cpuset.mems" => {
            let name = if key == "cpuset.cpus" {
                "AllowedCPUs"
            } else {
                "AllowedMemoryNodes"
            };
            props.push(prop(name, bits_value(range_to_bits(v)?)));
        }
        "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
            let name = match key {
                "memory.high" => "MemoryHigh",
                "memory.low" => "MemoryLow",
                "memory.min" => "MemoryMin",
                "memory.max" => "MemoryMax",
                _ => "MemorySwapMax",
            };
            props.push(prop(name, Value::U64(num(v)?)));
        }
        "pids.max" => props.push(prop("TasksMax", Value::U64(num(v)?))),
        // Everything else only goes to the files.
        _ => {}
    }
    Ok(())
}

/// One DeviceAllow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allow {
    typ: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: String,
}

/// Device rules as DevicePolicy/DeviceAllow, as runc does: systemd has
/// only allow lists, so the rules are first reduced (later rules win) to
/// either "allow all" (DevicePolicy=auto, no list) or a strict allow list.
/// A deny list on top of allow-all cannot be said; runc then gives systemd
/// a deny-all list and relies on its own rules in the files; so does
/// capsa. Entries systemd cannot name (`*:n`, an unknown major, a device
/// node that does not exist) are left to the files.
pub fn devices(rules: &[Rule]) -> Vec<Prop> {
    let mut allow_all = false;
    let mut denies = false;
    let mut list: Vec<Allow> = Vec::new();
    for r in rules {
        if r.typ == 'a' {
            // An 'a' rule covers every device, whatever its numbers.
            allow_all = r.allow;
            denies = false;
            list.clear();
            continue;
        }
        let key = |a: &Allow| a.typ == r.typ && a.major == r.major && a.minor == r.minor;
        if allow_all {
            denies |= !r.allow;
            continue;
        }
        match list.iter_mut().find(|a| key(a)) {
            Some(a) if r.allow => {
                for c in r.access.chars() {
                    if !a.access.contains(c) {
                        a.access.push(c);
                    }
                }
            }
            Some(a) => a.access.retain(|c| !r.access.contains(c)),
            None if r.allow => list.push(Allow {
                typ: r.typ,
                major: r.major,
                minor: r.minor,
                access: r.access.clone(),
            }),
            None => {}
        }
    }
    let empty = || Value::Array("(ss)".into(), vec![]);
    if allow_all && !denies {
        return vec![
            prop("DevicePolicy", Value::str("auto")),
            prop("DeviceAllow", empty()),
        ];
    }
    let mut props = vec![
        prop("DevicePolicy", Value::str("strict")),
        prop("DeviceAllow", empty()),
    ];
    if allow_all {
        return props;
    }
    // In runc's order (its rule emulator's: type, then major and minor,
    // a wildcard first), so that the unit reads the same as runc's.
    list.sort_by_key(|a| (a.typ, a.major.unwrap_or(-1), a.minor.unwrap_or(-1)));
    let mut entries = Vec::new();
    for a in list.iter().filter(|a| !a.access.is_empty()) {
        let kind = if a.typ == 'b' { "block" } else { "char" };
        let path = match (a.major, a.minor) {
            (None, None) => format!("{kind}-*"),
            (None, Some(_)) => continue,
            (Some(maj), None) => match device_group(a.typ, maj) {
                Some(g) => format!("{kind}-{g}"),
                None => continue,
            },
            (Some(maj), Some(min)) => {
                let p = format!("/dev/{kind}/{maj}:{min}");
                let exists = std::path::Path::new(&p).exists()
                    || std::path::Path::new(&format!("/sys{p}")).exists();
                if !exists {
                    continue;
                }
                p
            }
        };
        let access = ['r', 'w', 'm']
            .iter()
            .filter(|c| a.access.contains(**c))
            .collect::<String>();
        entries.push(Value::Struct(vec![Value::Str(path), Value::Str(access)]));
    }
    props.push(prop("DeviceAllow", Value::Array("(ss)".into(), entries)));
    props
}

/// The /proc/devices name of a major number of this type.
fn device_group(typ: char, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let want = if typ == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.ends_with("devices:") {
            in_section = line == want;
            continue;
        }
        if !in_section {
            continue;
        }
        let mut f = line.split_whitespace();
        if f.next().and_then(|n| n.parse::<i64>().ok()) == Some(major) {
            return f.next().map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(p: &[Prop]) -> Vec<String> {
        p.iter().map(|(n, v)| format!("{n}={v:?}")).collect()
    }

    #[test]
    fn v2_typical_docker() {
        let r = res(
            r#"{"memory":{"limit":104857600,"reservation":52428800,"swap":209715200},
                "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
                "pids":{"limit":100}}"#,
        );
        let p = resources(&r, true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            names(&p),
            [
                "MemoryMax=U64(104857600)",
                "MemoryLow=U64(52428800)",
                "MemorySwapMax=U64(104857600)",
                "CPUWeight=U64(20)",
                "CPUQuotaPeriodUSec=U64(100000)",
                "CPUQuotaPerSecUSec=U64(500000)",
                "TasksMax=U64(100)",
                "AllowedCPUs=Array(\"y\", [Byte(3)])",
                "AllowedMemoryNodes=Array(\"y\", [Byte(1)])",
            ]
        );
    }

    #[test]
    fn block_io_weights_and_throttles() {
        // Major 4095 names no device: its entries are left to the files.
        let r = res(r#"{"blockIO":{"weight":500,
                "weightDevice":[{"major":4095,"minor":0,"weight":300}],
                "throttleReadBpsDevice":[{"major":4095,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":4095,"minor":0,"rate":100}]}}"#);
        let v2 = resources(&r, true).unwrap_or_else(|e| panic!("{e:?}"));
        // runc's conversion: 1 + (500 - 10) * 9999 / 990 = 4950.
        assert_eq!(names(&v2), ["IOWeight=U64(4950)"]);
        let v1 = resources(&r, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(names(&v1), ["BlockIOWeight=U64(500)"]);
        // A device that exists: /dev/block/M:m of the first block device the host has.
        let Some(dev) = std::fs::read_dir("/dev/block")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
        else {
            return;
        };
        let name = dev.file_name().to_string_lossy().into_owned();
        let (maj, min) = name.split_once(':').expect("M:m");
        let r = res(&format!(
            r#"{{"blockIO":{{"weightDevice":[{{"major":{maj},"minor":{min},"weight":1000}}],
                "throttleReadBpsDevice":[{{"major":{maj},"minor":{min},"rate":1048576}}],
                "throttleWriteIOPSDevice":[{{"major":{maj},"minor":{min},"rate":100}}]}}}}"#
        ));
        let p = resources(&r, true).unwrap_or_else(|e| panic!("{e:?}"));
        let path = format!("/dev/block/{name}");
        assert_eq!(
            names(&p),
            [
                format!("IODeviceWeight=Array(\"(st)\", [Struct([Str({path:?}), U64(10000)])])"),
                format!(
                    "IOReadBandwidthMax=Array(\"(st)\", [Struct([Str({path:?}), U64(1048576)])])"
                ),
                format!("IOWriteIOPSMax=Array(\"(st)\", [Struct([Str({path:?}), U64(100)])])"),
            ]
        );
        assert_eq!(p[0].1.signature(), "a(st)");
    }

    #[test]
    fn v1_names() {
        let r = res(r#"{"memory":{"limit":-1},"cpu":{"shares":1024,"quota":-1},
                "blockIO":{"weight":500},"pids":{"limit":-1}}"#);
        let p = resources(&r, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            names(&p),
            [
                "MemoryLimit=U64(18446744073709551615)",
                "CPUShares=U64(1024)",
                "CPUQuotaPerSecUSec=U64(18446744073709551615)",
                "BlockIOWeight=U64(500)",
                "TasksMax=U64(18446744073709551615)",
            ]
        );
    }

    #[test]
    fn quota_rounds_up_to_whole_percent() {
        let mut p = Vec::new();
        cpu_quota(&mut p, 12_345, 0);
        assert_eq!(names(&p), ["CPUQuotaPerSecUSec=U64(130000)"]);
        let mut p = Vec::new();
        cpu_quota(&mut p, 0, 0);
        assert!(p.is_empty());
    }

    #[test]
    fn unified_keys_and_errors() {
        let r = res(
            r#"{"unified":{"memory.high":"max","cpu.max":"max 50000","pids.max":"7",
                "memory.oom.group":"1","cpu.weight":"300"}}"#,
        );
        let p = resources(&r, true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            names(&p),
            [
                "CPUQuotaPeriodUSec=U64(50000)",
                "CPUQuotaPerSecUSec=U64(18446744073709551615)",
                "CPUWeight=U64(300)",
                "MemoryHigh=U64(18446744073709551615)",
                "TasksMax=U64(7)",
            ]
        );
        let bad = res(r#"{"unified":{"memory.max":"lots"}}"#);
        let e = resources(&bad, true).err().unwrap_or_default();
        assert!(
            e.0.contains("memory.max") && e.1.contains("not a number"),
            "{e:?}"
        );
        let bad = res(r#"{"cpu":{"cpus":"3-1"}}"#);
        let e = resources(&bad, true).err().unwrap_or_default();
        assert_eq!(e.0, "cpu.cpus");
        let bad = res(r#"{"memory":{"limit":100,"swap":50}}"#);
        assert_eq!(
            resources(&bad, true).err().unwrap_or_default().0,
            "memory.swap"
        );
    }

    #[test]
    fn bitmasks() {
        assert_eq!(range_to_bits("0"), Ok(vec![1]));
        assert_eq!(range_to_bits("0-3,7"), Ok(vec![0x8f]));
        assert_eq!(range_to_bits("8"), Ok(vec![0, 1]));
        assert_eq!(range_to_bits(" 1 , 9-10 "), Ok(vec![2, 6]));
        assert!(range_to_bits("").is_err());
        assert!(range_to_bits("a").is_err());
        assert!(range_to_bits("1-").is_err());
    }

    fn rule(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access: access.into(),
        }
    }

    #[test]
    fn device_rules() {
        // Docker's: deny all, then runc's defaults.
        let mut rules = vec![rule(false, 'a', None, None, "rwm")];
        rules.extend(crate::cgroups::devices::default_rules());
        let p = devices(&rules);
        assert_eq!(p[0], prop("DevicePolicy", Value::str("strict")));
        let Value::Array(_, list) = &p[2].1 else {
            panic!("{p:?}")
        };
        let text: Vec<String> = list
            .iter()
            .map(|v| match v {
                Value::Struct(f) => format!(
                    "{} {}",
                    f[0].as_str().unwrap_or(""),
                    f[1].as_str().unwrap_or("")
                ),
                _ => String::new(),
            })
            .collect();
        // runc's order (on a host where these nodes exist).
        let order: Vec<&str> = text.iter().map(String::as_str).collect();
        let at = |e: &str| order.iter().position(|x| *x == e);
        assert_eq!(at("block-* m"), Some(0), "{text:?}");
        assert_eq!(at("char-* m"), Some(1), "{text:?}");
        assert_eq!(order.last(), Some(&"char-pts rwm"), "{text:?}");
        assert!(
            at("/dev/char/1:3 rwm") < at("/dev/char/1:5 rwm"),
            "{text:?}"
        );
        assert!(
            at("/dev/char/1:9 rwm") < at("/dev/char/5:0 rwm"),
            "{text:?}"
        );
        assert!(text.contains(&"char-* m".to_owned()), "{text:?}");
        assert!(text.contains(&"block-* m".to_owned()), "{text:?}");
        assert!(text.contains(&"/dev/char/1:3 rwm".to_owned()), "{text:?}");
        assert!(text.contains(&"char-pts rwm".to_owned()), "{text:?}");
        // Allow all: auto, no list; allow all minus something: deny-all list.
        let p = devices(&[rule(true, 'a', None, None, "rwm")]);
        assert_eq!(p[0], prop("DevicePolicy", Value::str("auto")));
        assert_eq!(p.len(), 2);
        let p = devices(&[
            rule(true, 'a', None, None, "rwm"),
            rule(false, 'c', Some(1), Some(3), "rwm"),
        ]);
        assert_eq!(p[0], prop("DevicePolicy", Value::str("strict")));
        assert_eq!(p.len(), 2);
        // A later deny takes access back.
        let p = devices(&[
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(false, 'c', Some(1), Some(3), "w"),
        ]);
        assert_eq!(
            p[2].1,
            Value::Array(
                "(ss)".into(),
                vec![Value::Struct(vec![
                    Value::str("/dev/char/1:3"),
                    Value::str("rm")
                ])]
            )
        );
    }
}

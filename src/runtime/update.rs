//! `update`: change a live container's resources, from a LinuxResources
//! JSON document (`--resources FILE|-`, as podman and containerd send it)
//! or from runc's flags. Only what is named changes; a rejected update
//! leaves the old limits (see cgroups::resources).

use std::io::Read;
use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::Runtime;
use crate::error::{Error, Result};
use crate::state::{ContainerDir, Status};

/// runc's `update` flags, as given on the command line: sizes as strings
/// (`512M`, `1g`, `-1` for unlimited), counts as numbers. Only the fields
/// given change.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UpdateFlags {
    /// `--memory`: memory limit.
    pub memory: Option<String>,
    /// `--memory-swap`: memory plus swap limit.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`: memory soft limit.
    pub memory_reservation: Option<String>,
    /// `--kernel-memory`: kernel memory limit (cgroup v1).
    pub kernel_memory: Option<String>,
    /// `--kernel-memory-tcp`: kernel TCP buffer limit (cgroup v1).
    pub kernel_memory_tcp: Option<String>,
    /// `--cpu-shares`: relative CPU weight.
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota`: CPU time per period, in microseconds.
    pub cpu_quota: Option<i64>,
    /// `--cpu-period`: the CFS period, in microseconds.
    pub cpu_period: Option<u64>,
    /// `--cpu-burst`: CFS burst, in microseconds.
    pub cpu_burst: Option<u64>,
    /// `--cpu-idle`: 1 makes the cgroup SCHED_IDLE, 0 undoes it.
    pub cpu_idle: Option<i64>,
    /// `--cpu-rt-period`: the real-time period, in microseconds.
    pub cpu_rt_period: Option<u64>,
    /// `--cpu-rt-runtime`: real-time runtime per period, in microseconds.
    pub cpu_rt_runtime: Option<i64>,
    /// `--cpuset-cpus`: CPUs allowed (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: memory nodes allowed.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`: maximum number of processes.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`: relative block I/O weight (10-1000).
    pub blkio_weight: Option<u16>,
    /// `--l3-cache-schema`: Intel RDT L3 schema (refused: unsupported).
    pub l3_cache_schema: Option<String>,
    /// `--mem-bw-schema`: Intel RDT memory bandwidth schema (refused).
    pub mem_bw_schema: Option<String>,
}

impl UpdateFlags {
    fn any(&self) -> bool {
        let f = self;
        f.memory.is_some()
            || f.memory_swap.is_some()
            || f.memory_reservation.is_some()
            || f.kernel_memory.is_some()
            || f.kernel_memory_tcp.is_some()
            || f.cpu_shares.is_some()
            || f.cpu_quota.is_some()
            || f.cpu_period.is_some()
            || f.cpu_burst.is_some()
            || f.cpu_idle.is_some()
            || f.cpu_rt_period.is_some()
            || f.cpu_rt_runtime.is_some()
            || f.cpuset_cpus.is_some()
            || f.cpuset_mems.is_some()
            || f.pids_limit.is_some()
            || f.blkio_weight.is_some()
            || f.l3_cache_schema.is_some()
            || f.mem_bw_schema.is_some()
    }

    /// The flags as a LinuxResources naming exactly the flags given.
    #[allow(deprecated)] // kernel memory: honoured on v1 kernels that still have it
    pub fn to_resources(&self) -> Result<LinuxResources> {
        if self.l3_cache_schema.is_some() || self.mem_bw_schema.is_some() {
            return Err(Error::Unsupported(
                "Intel RDT (--l3-cache-schema, --mem-bw-schema)".into(),
            ));
        }
        let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| parse_bytes(s).map_err(|e| Error::Usage(format!("--{flag}: {e}"))))
                .transpose()
        };
        let mut r = LinuxResources::default();
        let mut m = LinuxMemory::default();
        m.set_limit(bytes("memory", &self.memory)?);
        m.set_swap(bytes("memory-swap", &self.memory_swap)?);
        m.set_reservation(bytes("memory-reservation", &self.memory_reservation)?);
        m.set_kernel(bytes("kernel-memory", &self.kernel_memory)?);
        m.set_kernel_tcp(bytes("kernel-memory-tcp", &self.kernel_memory_tcp)?);
        if m != LinuxMemory::default() {
            r.set_memory(Some(m));
        }
        let mut c = LinuxCpu::default();
        c.set_shares(self.cpu_shares);
        c.set_quota(self.cpu_quota);
        c.set_period(self.cpu_period);
        c.set_burst(self.cpu_burst);
        c.set_idle(self.cpu_idle);
        c.set_realtime_period(self.cpu_rt_period);
        c.set_realtime_runtime(self.cpu_rt_runtime);
        c.set_cpus(self.cpuset_cpus.clone());
        c.set_mems(self.cpuset_mems.clone());
        if c != LinuxCpu::default() {
            r.set_cpu(Some(c));
        }
        if let Some(l) = self.pids_limit {
            // -1 is "max", 0 a real limit (runc >= 1.4's --pids-limit).
            let mut p = LinuxPids::default();
            p.set_limit(l);
            r.set_pids(Some(p));
        }
        if let Some(w) = self.blkio_weight {
            if !(10..=1000).contains(&w) {
                return Err(Error::Usage(format!(
                    "--blkio-weight: {w} is out of range 10-1000"
                )));
            }
            let mut b = LinuxBlockIo::default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }
}

/// Sizes as runc's flags take them (go-units RAMInBytes): a number with an
/// optional binary unit k, m, g, t, p (optionally followed by "b" or
/// "ib", any case); "-1" is unlimited.
pub fn parse_bytes(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size {s:?}: unknown unit")),
    };
    let v = n * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(v as i64)
}

/// Parse a LinuxResources document; errors name the JSON path.
pub fn parse_resources(data: &[u8], source: &str) -> Result<LinuxResources> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    let mut r: LinuxResources = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Error::Usage(format!("{source}: {path}: {}", e.into_inner()))
    })?;
    crate::spec_compat::drop_absent_pids_limit(&mut r, data, "/pids");
    Ok(r)
}

impl Runtime {
    /// `update ID`: `resources` is the --resources argument (a file, or
    /// "-" for stdin); it cannot be combined with the flags (runc ignores
    /// the flags then; capsa refuses rather than drop them silently).
    pub fn update(&self, id: &str, resources: Option<&Path>, flags: &UpdateFlags) -> Result<()> {
        let r = match resources {
            Some(_) if flags.any() => {
                return Err(Error::Usage(
                    "--resources cannot be combined with other update flags".into(),
                ));
            }
            Some(p) if p == Path::new("-") => {
                let mut data = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut data)
                    .map_err(|e| Error::Usage(format!("reading resources from stdin: {e}")))?;
                parse_resources(&data, "resources (stdin)")?
            }
            Some(p) => {
                let data = std::fs::read(p)
                    .map_err(|e| Error::Usage(format!("reading {}: {e}", p.display())))?;
                parse_resources(&data, &p.display().to_string())?
            }
            None => flags.to_resources()?,
        };
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        if st.status(&dir.path) == Status::Stopped {
            return Err(Error::NotRunning("container not running".into()));
        }
        super::nocgroup::refuse_without_cgroup(&st, "update")?;
        st.cgroup.update(&r)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok = [
            ("104857600", 104_857_600),
            ("100m", 104_857_600),
            ("100MB", 104_857_600),
            ("100MiB", 104_857_600),
            ("1g", 1 << 30),
            ("1.5k", 1536),
            ("-1", -1),
            ("0", 0),
        ];
        for (s, want) in ok {
            assert_eq!(parse_bytes(s), Ok(want), "{s}");
        }
        for s in ["", "abc", "10x", "-5", "1e400"] {
            assert!(parse_bytes(s).is_err(), "{s}");
        }
    }

    #[test]
    fn flags_name_only_what_is_given() {
        let f = UpdateFlags {
            memory: Some("100m".into()),
            cpu_quota: Some(50_000),
            ..Default::default()
        };
        let r = f.to_resources().unwrap_or_default();
        let m = r.memory().unwrap_or_default();
        assert_eq!(m.limit(), Some(104_857_600));
        assert_eq!(m.swap(), None);
        let c = r.cpu().clone().unwrap_or_default();
        assert_eq!(c.quota(), Some(50_000));
        assert_eq!(c.period(), None);
        assert!(r.pids().is_none() && r.block_io().is_none());
        let bad = UpdateFlags {
            blkio_weight: Some(5),
            ..Default::default()
        };
        assert!(bad.to_resources().is_err());
        let rdt = UpdateFlags {
            l3_cache_schema: Some("L3:0=f".into()),
            ..Default::default()
        };
        assert!(matches!(rdt.to_resources(), Err(Error::Unsupported(_))));
    }

    #[test]
    fn resources_json_as_engines_send_it() {
        let json = br#"{"memory":{"limit":104857600,"swap":209715200},"cpu":{"shares":512,"quota":50000,"period":100000}}"#;
        let r = parse_resources(json, "x").unwrap_or_default();
        assert_eq!(r.memory().and_then(|m| m.swap()), Some(209_715_200));
        assert_eq!(r.cpu().as_ref().and_then(|c| c.shares()), Some(512));
        let bad = parse_resources(br#"{"memory":{"limit":"lots"}}"#, "f");
        let msg = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("f: memory.limit:"), "{msg}");
    }
}

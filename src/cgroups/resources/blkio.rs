//! linux.resources.blockIO: v1 blkio files, or v2 io.weight/io.max
//! (BFQ's weight files where the scheduler has them).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::{Plan, blkio_to_io_weight, res_err};
use crate::cgroups::{CgroupError, Controller};

impl Plan<'_> {
    pub(super) fn block_io(&mut self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let throttles: [(&str, &Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
            (
                "throttleReadBpsDevice",
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
            ),
            (
                "throttleWriteBpsDevice",
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
            ),
            (
                "throttleReadIOPSDevice",
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
            ),
            (
                "throttleWriteIOPSDevice",
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
            ),
        ];
        // 0 means unset, as in runc (Docker passes weight 0).
        let weight = b.weight().filter(|&w| w != 0);
        let leaf_weight = b.leaf_weight().filter(|&w| w != 0);
        let any = weight.is_some()
            || leaf_weight.is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|t| t.1.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let leaf = self.leaf(Controller::Blkio, "blockIO")?;
        let dir = leaf.dir().to_owned();
        let v2 = leaf.is_v2();
        // BFQ's weight files take the v1 scale on both versions (runc).
        let (weight_file, bfq) = if v2 {
            if dir.join("io.bfq.weight").exists() {
                ("io.bfq.weight", true)
            } else {
                ("io.weight", false)
            }
        } else if dir.join("blkio.weight").exists() {
            ("blkio.weight", false)
        } else {
            ("blkio.bfq.weight", true)
        };
        let convert = |w: u16| {
            if v2 && !bfq {
                blkio_to_io_weight(w)
            } else {
                u64::from(w)
            }
        };
        if let Some(w) = weight {
            let f = self.weight_file(&dir, weight_file, "blockIO.weight")?;
            if v2 {
                let line = format!("default {}", convert(w));
                self.push_keyed(
                    "blockIO.weight",
                    f,
                    "default".into(),
                    line,
                    "default 100".into(),
                );
            } else {
                self.push("blockIO.weight", f, w.to_string());
            }
        }
        if let Some(w) = leaf_weight {
            if v2 {
                return Err(res_err(
                    "blockIO.leafWeight",
                    "cgroup v2 has no leaf weight",
                ));
            }
            let f = self.file(&dir, "blkio.leaf_weight", "blockIO.leafWeight")?;
            self.push("blockIO.leafWeight", f, w.to_string());
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let key = format!("{}:{}", d.major(), d.minor());
            if let Some(w) = d.weight() {
                let field = format!("blockIO.weightDevice[{i}].weight");
                let file = if v2 {
                    weight_file.to_owned()
                } else {
                    format!("{weight_file}_device")
                };
                let f = self.weight_file(&dir, &file, &field)?;
                let absent = if v2 {
                    format!("{key} default")
                } else {
                    format!("{key} 0")
                };
                self.push_keyed(
                    &field,
                    f,
                    key.clone(),
                    format!("{key} {}", convert(w)),
                    absent,
                );
            }
            if let Some(w) = d.leaf_weight() {
                let field = format!("blockIO.weightDevice[{i}].leafWeight");
                if v2 {
                    return Err(res_err(field, "cgroup v2 has no leaf weight"));
                }
                let f = self.file(&dir, "blkio.leaf_weight_device", &field)?;
                self.push_keyed(
                    &field,
                    f,
                    key.clone(),
                    format!("{key} {w}"),
                    format!("{key} 0"),
                );
            }
        }
        for (name, list, v1_file, v2_key) in throttles {
            for (i, t) in list.iter().flatten().enumerate() {
                let field = format!("blockIO.{name}[{i}]");
                let key = format!("{}:{}", t.major(), t.minor());
                if v2 {
                    let f = self.file(&dir, "io.max", &field)?;
                    let rate = if t.rate() == 0 {
                        "max".to_owned()
                    } else {
                        t.rate().to_string()
                    };
                    let absent = format!("{key} rbps=max wbps=max riops=max wiops=max");
                    self.push_keyed(
                        &field,
                        f,
                        key.clone(),
                        format!("{key} {v2_key}={rate}"),
                        absent,
                    );
                } else {
                    let f = self.file(&dir, v1_file, &field)?;
                    let line = format!("{key} {}", t.rate());
                    self.push_keyed(&field, f, key.clone(), line, format!("{key} 0"));
                }
            }
        }
        Ok(())
    }

    fn weight_file(&self, dir: &Path, name: &str, field: &str) -> Result<PathBuf, CgroupError> {
        self.file(dir, name, field).map_err(|_| {
            res_err(
                field,
                format!(
                    "{} has no {name} (nor the other weight file): the block I/O scheduler in use (not BFQ/CFQ) supports no weights",
                    dir.display()
                ),
            )
        })
    }
}

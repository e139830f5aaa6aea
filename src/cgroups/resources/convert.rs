//! runc's conversions of v1-scale values for v2 files, pure and unit-tested.

/// A v2 limit: negative means no limit, written as "max".
pub(super) fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// runc's conversion of cpu.shares (2..262144, default 1024) to cpu.weight
/// (1..10000, default 100); 0 stays 0 (unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// runc's conversion of blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// memory.swap in the spec is memory+swap (v1 memsw); v2's memory.swap.max
/// is swap alone. Returns the v2 value: 0 = leave alone, -1 = "max".
pub fn swap_to_v2(limit: i64, swap: i64) -> Result<i64, String> {
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err("a swap limit needs a memory limit".into());
    }
    if limit < 0 || swap < 0 {
        return Err(format!("invalid memory {limit} / swap {swap}"));
    }
    if swap < limit {
        return Err(format!(
            "memory+swap ({swap}) must not be below the memory limit ({limit})"
        ));
    }
    Ok(swap - limit)
}

/// cpu.max for the given quota/period; `cur_quota` is the quota now in the
/// file, kept when only the period changes.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>, cur_quota: &str) -> String {
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None => cur_quota.to_owned(),
    };
    match period {
        Some(p) => format!("{q} {p}"),
        None => q,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_blkio_weights() {
        for (shares, weight) in [
            (0, 0),
            (2, 1),
            (1, 1),
            (1024, 39),
            (262_144, 10_000),
            (1_000_000, 10_000),
            (512, 20),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        for (w, io) in [(10, 1), (1000, 10_000), (500, 4950), (100, 910), (5, 1)] {
            assert_eq!(blkio_to_io_weight(w), io, "blkio {w}");
        }
    }

    #[test]
    fn swap_conversion() {
        let ok = [
            ((-1, 0), -1),
            ((100, 0), 0),
            ((100, -1), -1),
            ((104_857_600, 209_715_200), 104_857_600),
            ((100, 100), 0),
        ];
        for ((l, s), want) in ok {
            assert_eq!(swap_to_v2(l, s), Ok(want), "{l} {s}");
        }
        for (l, s) in [(0, 100), (-1, 100), (200, 100), (-5, 100)] {
            assert!(swap_to_v2(l, s).is_err(), "{l} {s}");
        }
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(cpu_max(Some(50_000), Some(100_000), "max"), "50000 100000");
        assert_eq!(cpu_max(Some(50_000), None, "max"), "50000");
        assert_eq!(cpu_max(None, Some(20_000), "30000"), "30000 20000");
        assert_eq!(cpu_max(Some(-1), Some(100_000), "5"), "max 100000");
    }

    #[test]
    fn max_or_negative() {
        assert_eq!(max_or(-1), "max");
        assert_eq!(max_or(0), "0");
        assert_eq!(max_or(42), "42");
    }
}

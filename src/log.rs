//! runc-compatible log lines for `--log FILE --log-format text|json`:
//! `{"level":"error","msg":"...","time":"RFC3339"}` per line in JSON (what
//! containerd and podman parse), logrus' `time=... level=... msg=...` in text.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Where error (and, with --debug, debug) lines go.
pub struct Logger {
    file: Option<std::fs::File>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<Logger> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(Logger {
            file,
            format,
            debug,
        })
    }

    pub fn line(format: Format, level: &str, msg: &str) -> String {
        let time = rfc3339_now();
        match format {
            Format::Json => {
                let v = serde_json::json!({"level": level, "msg": msg, "time": time});
                format!("{v}\n")
            }
            Format::Text => format!(
                "time=\"{time}\" level={level} msg={}\n",
                serde_json::Value::from(msg)
            ),
        }
    }

    fn write(&mut self, level: &str, msg: &str) {
        if let Some(f) = &mut self.file {
            let _ = f.write_all(Self::line(self.format, level, msg).as_bytes());
        }
    }

    pub fn error(&mut self, msg: &str) {
        self.write("error", msg);
    }

    /// A --debug line (accepted, as runc's flag; capsa writes none yet).
    #[allow(dead_code)]
    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }
}

// The binary's own copy of the library's time formatting (which is not
// part of its API): the same text as `created` in the state.
/// Now as RFC 3339 with nanoseconds in UTC, as runc prints `created`.
fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_nanos())
}

/// Format seconds since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape() {
        let l = Logger::line(Format::Json, "error", "container does not exist \"x\"");
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container does not exist \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
    }
}

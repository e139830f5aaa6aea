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
        let time = capsa::rfc3339_now();
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

//! `org.systemd.property.<Name>` annotations: the name checked and the value
//! parsed from GVariant text, as runc does (godbus ParseVariant), for the
//! forms unit properties take: booleans, integers with or without a type
//! (`uint64 123`, `@t 123`, a bare number is an int32), doubles, strings
//! ('...' or "..."), and arrays of those (`['a', 'b']`, `@as []`). A name
//! `<x>Sec` with a lowercase letter before Sec becomes `<x>USec`, its
//! value converted from seconds to microseconds (runc's rule, since systemd
//! documents `TimeoutStopSec` but takes `TimeoutStopUSec`). Anything else is
//! an error naming the annotation.

use super::wire::Value;

pub const PREFIX: &str = "org.systemd.property.";

/// One annotation as a (name, value) unit property; None if the key is not
/// an `org.systemd.property.` one.
pub fn property(key: &str, text: &str) -> Option<Result<(String, Value), String>> {
    let name = key.strip_prefix(PREFIX)?;
    Some(parse_property(key, name, text))
}

fn parse_property(key: &str, name: &str, text: &str) -> Result<(String, Value), String> {
    let mut chars = name.chars();
    let ok_name = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric());
    if !ok_name {
        return Err(format!(
            "annotations.{key:?}: {name:?} is not a systemd property name (an uppercase letter, then letters and digits)"
        ));
    }
    let value = parse(text).map_err(|e| format!("annotations.{key:?}: value {text:?}: {e}"))?;
    if let Some(stem) = name.strip_suffix("Sec")
        && stem.ends_with(|c: char| c.is_ascii_lowercase())
    {
        let usec =
            sec_to_usec(&value).map_err(|e| format!("annotations.{key:?}: value {text:?}: {e}"))?;
        return Ok((format!("{stem}USec"), Value::U64(usec)));
    }
    Ok((name.to_owned(), value))
}

fn sec_to_usec(v: &Value) -> Result<u64, String> {
    let secs: f64 = match v {
        Value::Byte(n) => f64::from(*n),
        Value::U16(n) => f64::from(*n),
        Value::U32(n) => f64::from(*n),
        Value::U64(n) => return n.checked_mul(1_000_000).ok_or("too large".into()),
        Value::I16(n) if *n >= 0 => f64::from(*n),
        Value::I32(n) if *n >= 0 => f64::from(*n),
        Value::I64(n) if *n >= 0 => {
            return u64::try_from(*n)
                .ok()
                .and_then(|n| n.checked_mul(1_000_000))
                .ok_or("too large".into());
        }
        Value::Double(d) if *d >= 0.0 => *d,
        _ => return Err("a time in seconds must be a non-negative number".into()),
    };
    let usec = secs * 1e6;
    if !usec.is_finite() || usec >= 1.8e19 {
        return Err("too large".into());
    }
    // Truncation is intended: whole microseconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(usec as u64)
}

/// Parse one GVariant text value.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(None)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// GVariant type keywords and the signature they stand for.
const KEYWORDS: &[(&str, &str)] = &[
    ("boolean", "b"),
    ("byte", "y"),
    ("int16", "n"),
    ("uint16", "q"),
    ("int32", "i"),
    ("uint32", "u"),
    ("int64", "x"),
    ("uint64", "t"),
    ("double", "d"),
    ("string", "s"),
    ("objectpath", "o"),
];

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn word(&mut self) -> &str {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_+-.".contains(c))
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    /// A value, of signature `want` if given (from a type annotation).
    fn value(&mut self, want: Option<&str>) -> Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("empty value".into()),
            Some(b'@') => {
                self.i += 1;
                let start = self.i;
                while self.s.get(self.i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    self.i += 1;
                }
                let sig = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                self.value(Some(sig))
            }
            Some(b'\'' | b'"') => {
                let s = self.string()?;
                match want {
                    None | Some("s") => Ok(Value::Str(s)),
                    Some("o") => Ok(Value::ObjPath(s)),
                    Some(w) => Err(format!("a string where type {w:?} was asked for")),
                }
            }
            Some(b'[') => self.array(want),
            Some(_) => {
                let save = self.i;
                let w = self.word().to_owned();
                if let Some((_, sig)) = KEYWORDS.iter().find(|(k, _)| *k == w) {
                    if want.is_some() {
                        return Err(format!("two types given ({w})"));
                    }
                    return self.value(Some(sig));
                }
                self.i = save;
                let w = self.word().to_owned();
                scalar(&w, want)
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match c {
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated string".into());
                    };
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'\\' | b'\'' | b'"' => e,
                        _ => return Err(format!("unsupported escape \\{}", e as char)),
                    });
                }
                c if c == quote => break,
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
    }

    fn array(&mut self, want: Option<&str>) -> Result<Value, String> {
        let elem = match want {
            Some(w) => Some(
                w.strip_prefix('a')
                    .filter(|e| e.len() == 1 && "bynqiuxtdso".contains(*e))
                    .ok_or_else(|| {
                        format!("type {w:?} is not supported (booleans, integers, doubles, strings and arrays of them are)")
                    })?
                    .to_owned(),
            ),
            None => None,
        };
        self.i += 1;
        let mut items: Vec<Value> = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b']') {
                self.i += 1;
                break;
            }
            if !items.is_empty() {
                if self.s.get(self.i) != Some(&b',') {
                    return Err("expected ',' or ']' in an array".into());
                }
                self.i += 1;
            }
            let want_elem = elem.clone().or_else(|| items.first().map(Value::signature));
            items.push(self.value(want_elem.as_deref())?);
        }
        let elem = match (elem, items.first()) {
            (Some(e), _) => e,
            (None, Some(v)) => v.signature(),
            (None, None) => return Err("an empty array needs a type (e.g. @as [])".into()),
        };
        if items.iter().any(|v| v.signature() != elem) {
            return Err("array elements of different types".into());
        }
        Ok(Value::Array(elem, items))
    }
}

fn scalar(w: &str, want: Option<&str>) -> Result<Value, String> {
    let bad = || format!("cannot parse {w:?} as {}", want.unwrap_or("a value"));
    let int = |w: &str| -> Result<i128, String> {
        let (neg, digits) = match w.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, w),
        };
        let n = if let Some(h) = digits.strip_prefix("0x") {
            i128::from_str_radix(h, 16)
        } else {
            digits.parse::<i128>()
        }
        .map_err(|_| bad())?;
        Ok(if neg { -n } else { n })
    };
    let fit = |r: Result<Value, std::num::TryFromIntError>| {
        r.map_err(|_| format!("{w} is out of range for {}", want.unwrap_or("int32")))
    };
    match want {
        None if w == "true" || w == "false" => Ok(Value::Bool(w == "true")),
        Some("b") => match w {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        None if w.contains(['.', 'e']) && !w.starts_with("0x") => {
            w.parse().map(Value::Double).map_err(|_| bad())
        }
        Some("d") => w.parse().map(Value::Double).map_err(|_| bad()),
        None | Some("i") => fit(i32::try_from(int(w)?).map(Value::I32)),
        Some("y") => fit(u8::try_from(int(w)?).map(Value::Byte)),
        Some("n") => fit(i16::try_from(int(w)?).map(Value::I16)),
        Some("q") => fit(u16::try_from(int(w)?).map(Value::U16)),
        Some("u") => fit(u32::try_from(int(w)?).map(Value::U32)),
        Some("x") => fit(i64::try_from(int(w)?).map(Value::I64)),
        Some("t") => fit(u64::try_from(int(w)?).map(Value::U64)),
        Some(other) => Err(format!(
            "type {other:?} is not supported (booleans, integers, doubles, strings and arrays of them are)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(k: &str, v: &str) -> Result<(String, Value), String> {
        property(&format!("{PREFIX}{k}"), v).unwrap_or(Err("not a property".into()))
    }

    #[test]
    fn runc_examples() {
        assert_eq!(
            prop("TimeoutStopUSec", "uint64 123456789"),
            Ok(("TimeoutStopUSec".into(), Value::U64(123_456_789)))
        );
        assert_eq!(
            prop("CollectMode", "'inactive-or-failed'"),
            Ok(("CollectMode".into(), Value::str("inactive-or-failed")))
        );
        // Sec -> USec, seconds -> microseconds.
        assert_eq!(
            prop("TimeoutStopSec", "2"),
            Ok(("TimeoutStopUSec".into(), Value::U64(2_000_000)))
        );
        assert_eq!(
            prop("RuntimeMaxSec", "1.5"),
            Ok(("RuntimeMaxUSec".into(), Value::U64(1_500_000)))
        );
        // A capital before "Sec" is not the Sec suffix (e.g. "CPUSec").
        assert_eq!(prop("XSec", "uint64 5"), Ok(("XSec".into(), Value::U64(5))));
        assert!(property("other.annotation", "x").is_none());
    }

    #[test]
    fn value_forms() {
        let ok = [
            ("true", Value::Bool(true)),
            ("boolean false", Value::Bool(false)),
            ("42", Value::I32(42)),
            ("-7", Value::I32(-7)),
            ("@t 5", Value::U64(5)),
            ("@u 5", Value::U32(5)),
            ("uint32 0x10", Value::U32(16)),
            ("int64 -3", Value::I64(-3)),
            ("byte 255", Value::Byte(255)),
            ("1.25", Value::Double(1.25)),
            ("\"a 'b'\"", Value::str("a 'b'")),
            ("'it\\'s'", Value::str("it's")),
            (
                "['a', 'b']",
                Value::Array("s".into(), vec![Value::str("a"), Value::str("b")]),
            ),
            ("@as []", Value::Array("s".into(), vec![])),
            (
                "@at [1, 2]",
                Value::Array("t".into(), vec![Value::U64(1), Value::U64(2)]),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn errors() {
        for (k, v, want) in [
            ("lower", "1", "not a systemd property name"),
            ("Bad-Name", "1", "not a systemd property name"),
            ("", "1", "not a systemd property name"),
            ("X", "", "empty value"),
            ("X", "uint64 -1", "out of range"),
            ("X", "5000000000", "out of range"),
            ("X", "'open", "unterminated"),
            ("X", "[]", "needs a type"),
            ("X", "[1, 'a']", "a string where type"),
            ("X", "@a{sv} []", "not supported"),
            ("X", "1 2", "unexpected text"),
            ("X", "yes", "cannot parse"),
            ("TimeoutSec", "'x'", "non-negative number"),
            ("TimeoutSec", "-1", "non-negative number"),
        ] {
            let err = prop(k, v).err().unwrap_or_default();
            assert!(err.contains(want), "{k} {v}: {err}");
            assert!(err.starts_with("annotations."), "{err}");
        }
    }
}

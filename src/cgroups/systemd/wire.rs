//! D-Bus wire format: values, their signatures, marshalling into a message
//! body and back (the D-Bus specification's "Marshaling" section). Only
//! what capsa exchanges with systemd and the bus daemon: basic types,
//! arrays, structs, dict entries (read as structs) and variants; no file
//! descriptors.

/// One D-Bus value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    ObjPath(String),
    Sig(String),
    /// Element signature and the elements (all of that signature).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("D-Bus message truncated (reading {0})")]
    Short(&'static str),
    #[error("D-Bus signature {0:?} is invalid or unsupported")]
    Signature(String),
    #[error("D-Bus value is invalid: {0}")]
    Invalid(String),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// This value's signature (one complete type).
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::ObjPath(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjPath(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(v) => Some(*v),
            _ => None,
        }
    }
}

/// Alignment of a type by its first signature character.
fn align_of(c: u8) -> usize {
    match c {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // x t d ( {
    }
}

/// Appends marshalled values to a buffer whose offset 0 is 8-aligned (a
/// message's start or its body's start).
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) -> Result<(), WireError> {
        if s.contains('\0') {
            return Err(WireError::Invalid(format!("string {s:?} contains NUL")));
        }
        let len =
            u32::try_from(s.len()).map_err(|_| WireError::Invalid("string too long".into()))?;
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn sig(&mut self, s: &str) -> Result<(), WireError> {
        let len = u8::try_from(s.len()).map_err(|_| WireError::Signature(s.into()))?;
        self.buf.push(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    pub fn value(&mut self, v: &Value) -> Result<(), WireError> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I16(x) => {
                self.pad(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::U16(x) => {
                self.pad(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::I32(x) => {
                self.pad(4);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::U32(x) => self.u32(*x),
            Value::I64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::U64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Double(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Str(s) | Value::ObjPath(s) => self.string(s)?,
            Value::Sig(s) => self.sig(s)?,
            Value::Array(elem, items) => {
                self.pad(4);
                let len_at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                let first = *elem
                    .as_bytes()
                    .first()
                    .ok_or_else(|| WireError::Signature(String::new()))?;
                // Padding to the first element is not counted in the length.
                self.pad(align_of(first));
                let start = self.buf.len();
                for item in items {
                    if item.signature() != *elem {
                        return Err(WireError::Invalid(format!(
                            "array of {elem} holds a {}",
                            item.signature()
                        )));
                    }
                    self.value(item)?;
                }
                let len = u32::try_from(self.buf.len() - start)
                    .map_err(|_| WireError::Invalid("array too long".into()))?;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f)?;
                }
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature())?;
                self.value(inner)?;
            }
        }
        Ok(())
    }
}

/// Reads marshalled values; offsets count from an 8-aligned start.
pub struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
    /// Little-endian data (the message's first byte is 'l').
    le: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], le: bool) -> Reader<'a> {
        Reader { buf, pos: 0, le }
    }

    pub fn align(&mut self, a: usize) -> Result<(), WireError> {
        let to = self.pos.next_multiple_of(a);
        if to > self.buf.len() {
            return Err(WireError::Short("padding"));
        }
        self.pos = to;
        Ok(())
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or(WireError::Short(what))?;
        self.pos += N;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        if !self.le {
            out.reverse();
        }
        Ok(out)
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take::<4>("u32")?))
    }

    fn bytes_nul(&mut self, len: usize) -> Result<String, WireError> {
        let end = self.pos + len;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Short("string"))?;
        if self.buf.get(end) != Some(&0) {
            return Err(WireError::Invalid("string without its NUL".into()));
        }
        self.pos = end + 1;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| WireError::Invalid("string is not UTF-8".into()))
    }

    fn sig(&mut self) -> Result<String, WireError> {
        let len = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::Short("signature"))?;
        self.pos += 1;
        self.bytes_nul(len as usize)
    }

    /// Read one value of the complete type `sig`.
    pub fn value(&mut self, sig: &str) -> Result<Value, WireError> {
        let bad = || WireError::Signature(sig.to_owned());
        let first = *sig.as_bytes().first().ok_or_else(bad)?;
        Ok(match first {
            b'y' => {
                let b = *self.buf.get(self.pos).ok_or(WireError::Short("byte"))?;
                self.pos += 1;
                Value::Byte(b)
            }
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' => Value::I16(i16::from_le_bytes(self.take::<2>("int16")?)),
            b'q' => Value::U16(u16::from_le_bytes(self.take::<2>("uint16")?)),
            b'i' => Value::I32(i32::from_le_bytes(self.take::<4>("int32")?)),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.take::<8>("int64")?)),
            b't' => Value::U64(u64::from_le_bytes(self.take::<8>("uint64")?)),
            b'd' => Value::Double(f64::from_le_bytes(self.take::<8>("double")?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.bytes_nul(len)?;
                if first == b's' {
                    Value::Str(s)
                } else {
                    Value::ObjPath(s)
                }
            }
            b'g' => Value::Sig(self.sig()?),
            b'v' => {
                let inner = self.sig()?;
                if complete_type_len(&inner) != Some(inner.len()) {
                    return Err(WireError::Signature(inner));
                }
                Value::Variant(Box::new(self.value(&inner)?))
            }
            b'a' => {
                let elem = &sig[1..];
                let elem_len = complete_type_len(elem).ok_or_else(bad)?;
                let elem = &elem[..elem_len];
                let len = self.u32()? as usize;
                self.align(align_of(elem.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return Err(WireError::Short("array"));
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                if self.pos != end {
                    return Err(WireError::Invalid("array length mismatch".into()));
                }
                Value::Array(elem.to_owned(), items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let len = complete_type_len(sig).ok_or_else(bad)?;
                let mut inner = &sig[1..len - 1];
                let mut fields = Vec::new();
                while !inner.is_empty() {
                    let n = complete_type_len(inner).ok_or_else(bad)?;
                    fields.push(self.value(&inner[..n])?);
                    inner = &inner[n..];
                }
                Value::Struct(fields)
            }
            _ => return Err(bad()),
        })
    }

    /// Read every value of a body whose signature is `sig` (zero or more
    /// complete types).
    pub fn values(&mut self, sig: &str) -> Result<Vec<Value>, WireError> {
        let mut out = Vec::new();
        let mut rest = sig;
        while !rest.is_empty() {
            let n = complete_type_len(rest).ok_or_else(|| WireError::Signature(sig.into()))?;
            out.push(self.value(&rest[..n])?);
            rest = &rest[n..];
        }
        Ok(out)
    }
}

/// The length of the first complete type in `sig`, if it is valid.
pub fn complete_type_len(sig: &str) -> Option<usize> {
    let b = sig.as_bytes();
    match *b.first()? {
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'v' | b'h' => Some(1),
        b'a' => Some(1 + complete_type_len(&sig[1..])?),
        open @ (b'(' | b'{') => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            let mut n = 0;
            while *b.get(i)? != close {
                i += complete_type_len(&sig[i..])?;
                n += 1;
            }
            // A struct has at least one field, a dict entry exactly two.
            let ok = if open == b'(' { n >= 1 } else { n == 2 };
            ok.then_some(i + 1)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let mut w = Writer::default();
        w.value(v).unwrap_or_else(|e| panic!("{e}"));
        let mut r = Reader::new(&w.buf, true);
        let back = r.value(&v.signature()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.pos, w.buf.len());
        back
    }

    #[test]
    fn values_round_trip() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::str("PIDs"),
                    Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(42)]))),
                ]),
                Value::Struct(vec![
                    Value::str("MemoryMax"),
                    Value::Variant(Box::new(Value::U64(1 << 30))),
                ]),
                Value::Struct(vec![
                    Value::str("Delegate"),
                    Value::Variant(Box::new(Value::Bool(true))),
                ]),
                Value::Struct(vec![
                    Value::str("AllowedCPUs"),
                    Value::Variant(Box::new(Value::Array("y".into(), vec![Value::Byte(3)]))),
                ]),
            ],
        );
        assert_eq!(props.signature(), "a(sv)");
        assert_eq!(round_trip(&props), props);
        for v in [
            Value::I16(-2),
            Value::U16(7),
            Value::I32(-5),
            Value::I64(-1),
            Value::Double(1.5),
            Value::ObjPath("/org/freedesktop/systemd1".into()),
            Value::Sig("a(sv)".into()),
            Value::Array("s".into(), vec![]),
            Value::Array("t".into(), vec![]),
        ] {
            assert_eq!(round_trip(&v), v);
        }
    }

    #[test]
    fn known_encoding() {
        // "s" then a u64: string at 0 (len 4 + "abc\0"), u64 8-aligned at 8.
        let mut w = Writer::default();
        w.value(&Value::str("abc")).ok();
        w.value(&Value::U64(1)).ok();
        assert_eq!(
            w.buf,
            [3, 0, 0, 0, b'a', b'b', b'c', 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        // An empty array of 8-aligned structs still pads to the element.
        let mut w = Writer::default();
        w.value(&Value::Array("(sv)".into(), vec![])).ok();
        assert_eq!(w.buf, [0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn signatures() {
        assert_eq!(complete_type_len("a(sv)s"), Some(5));
        assert_eq!(complete_type_len("a{sv}"), Some(5));
        assert_eq!(complete_type_len("a(sa(sv))"), Some(9));
        assert_eq!(complete_type_len("()"), None);
        assert_eq!(complete_type_len("{s}"), None);
        assert_eq!(complete_type_len("a"), None);
        assert_eq!(complete_type_len("(s"), None);
        assert_eq!(complete_type_len("z"), None);
    }

    #[test]
    fn truncated_and_bad_input() {
        let mut r = Reader::new(&[5, 0, 0, 0, b'a'], true);
        assert!(r.value("s").is_err());
        let mut r = Reader::new(&[0xff, 0, 0, 0], true);
        assert!(r.value("a(sv)").is_err());
        let mut r = Reader::new(&[1, b'z', 0], true);
        assert!(r.value("v").is_err());
        let mut w = Writer::default();
        assert!(w.value(&Value::str("a\0b")).is_err());
        assert!(
            w.value(&Value::Array("u".into(), vec![Value::Bool(true)]))
                .is_err()
        );
    }

    #[test]
    fn big_endian_read() {
        let mut r = Reader::new(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], false);
        assert_eq!(r.value("u"), Ok(Value::U32(2)));
        assert_eq!(r.value("t"), Ok(Value::U64(256)));
    }
}

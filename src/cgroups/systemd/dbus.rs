//! A small blocking D-Bus client: one unix socket, SASL EXTERNAL, Hello,
//! method calls and their replies or errors, and waiting for a signal.
//! No threads (create forks afterwards) and no C library (the binary is
//! static). Replies arriving out of order do not occur (one call at a time);
//! signals that arrive while waiting for a reply are kept for `wait_signal`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use super::wire::{Reader, Value, WireError, Writer};

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("D-Bus address {0:?}: {1}")]
    Address(String, String),
    #[error("connecting to the D-Bus socket {addr}: {err}")]
    Connect { addr: String, err: std::io::Error },
    #[error("D-Bus {addr}: {op}: {err}")]
    Io {
        addr: String,
        op: &'static str,
        err: std::io::Error,
    },
    #[error("D-Bus {0}: authentication refused: {1:?}")]
    Auth(String, String),
    #[error("D-Bus {0}")]
    Wire(#[from] WireError),
    /// The peer answered with an error.
    #[error("{method}: {name}: {message}")]
    Remote {
        method: String,
        name: String,
        message: String,
    },
    #[error("{0}: the reply has signature {1:?}, expected {2:?}")]
    ReplyType(String, String, String),
    #[error("D-Bus {addr}: no answer to {what} within {secs} s")]
    Timeout {
        addr: String,
        what: String,
        secs: u64,
    },
}

impl DbusError {
    /// The D-Bus error name of a remote error.
    pub fn remote_name(&self) -> Option<&str> {
        match self {
            DbusError::Remote { name, .. } => Some(name),
            _ => None,
        }
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub signature: String,
    pub body: Vec<Value>,
}

/// A method call to make.
pub struct Call<'a> {
    pub dest: &'a str,
    pub path: &'a str,
    pub iface: &'a str,
    pub member: &'a str,
    pub args: Vec<Value>,
}

pub struct Connection {
    sock: UnixStream,
    addr: String,
    serial: u32,
    /// Signals read while waiting for a reply.
    pending: VecDeque<Message>,
    /// Our unique name (from Hello; empty on a direct connection).
    pub unique_name: String,
    /// A peer-to-peer connection to the service itself (systemd's private
    /// socket), with no bus daemon: no Hello, no AddMatch, and the peer
    /// sends us its signals unasked.
    direct: bool,
}

/// The unix socket of a D-Bus address (`unix:path=...` or
/// `unix:abstract=...`; the first of a `;`-separated list that is one).
pub fn parse_address(addr: &str) -> Result<SocketAddr, DbusError> {
    let bad = |why: &str| DbusError::Address(addr.to_owned(), why.to_owned());
    for one in addr.split(';') {
        let Some(params) = one.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v = unescape(v).ok_or_else(|| bad("bad %-escape"))?;
            return match k {
                "path" => {
                    use std::os::unix::ffi::OsStrExt;
                    SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&v))
                        .map_err(|e| bad(&e.to_string()))
                }
                "abstract" => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(&v).map_err(|e| bad(&e.to_string()))
                }
                _ => continue,
            };
        }
    }
    Err(bad("no unix:path= or unix:abstract= transport in it"))
}

fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// How long one call may take before the bus is given up on.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Connection {
    /// Connect to `addr`, authenticate as our uid and say Hello.
    pub fn open(addr: &str) -> Result<Connection, DbusError> {
        Connection::open_as(addr, nix::unistd::geteuid().as_raw())
    }

    /// Connect to `addr` and authenticate as `uid`: a rootless container's
    /// runtime may run as root in a user namespace yet must speak to the
    /// user's session bus as the user (youki issue 2208), which libdbus
    /// does not allow and this client does.
    pub fn open_as(addr: &str, uid: u32) -> Result<Connection, DbusError> {
        let mut c = Connection::connect(addr, uid, false)?;
        let hello = c.call(
            &Call {
                dest: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                iface: "org.freedesktop.DBus",
                member: "Hello",
                args: vec![],
            },
            "s",
        )?;
        c.unique_name = hello
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(c)
    }

    /// Connect to a service's own socket (`addr`, e.g. systemd's
    /// /run/systemd/private) and authenticate as our uid: the same protocol
    /// without a bus daemon in between, which is how systemctl reaches
    /// systemd when the system bus is down.
    pub fn open_direct(addr: &str) -> Result<Connection, DbusError> {
        Connection::connect(addr, nix::unistd::geteuid().as_raw(), true)
    }

    fn connect(addr: &str, uid: u32, direct: bool) -> Result<Connection, DbusError> {
        let sa = parse_address(addr)?;
        let sock = UnixStream::connect_addr(&sa).map_err(|err| DbusError::Connect {
            addr: addr.to_owned(),
            err,
        })?;
        let mut c = Connection {
            sock,
            addr: addr.to_owned(),
            serial: 0,
            pending: VecDeque::new(),
            unique_name: String::new(),
            direct,
        };
        c.auth(uid)?;
        if direct {
            c.settle()?;
        }
        Ok(c)
    }

    /// Get a direct connection running before its first real call.
    /// systemd's server (sd-bus) leaves bytes that arrive together with
    /// BEGIN unread until the socket is readable again, so a lone first
    /// call can wait forever (seen with StopUnit on systemd 252). Pings go
    /// out, each one waking the server, until one is answered; every
    /// reply is matched by serial, so a late one is dropped harmlessly.
    fn settle(&mut self) -> Result<(), DbusError> {
        let ping = Call {
            dest: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1",
            iface: "org.freedesktop.DBus.Peer",
            member: "Ping",
            args: vec![],
        };
        let deadline = Instant::now() + CALL_TIMEOUT;
        let what = "a reply to org.freedesktop.DBus.Peer.Ping";
        let mut wait = Duration::from_millis(20);
        let first = self.send(&ping)?;
        loop {
            // Wait until readable, without reading: giving up on a wait
            // must never split a message.
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            use std::os::fd::AsFd;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout {
                    addr: self.addr.clone(),
                    what: what.into(),
                    secs: CALL_TIMEOUT.as_secs(),
                });
            }
            let ms = u16::try_from(wait.min(left).as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => {
                    self.send(&ping)?;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Ok(_) => {
                    let m = self.recv(deadline, what)?;
                    if m.reply_serial.is_some_and(|r| r >= first) {
                        return Ok(());
                    }
                    if m.kind == SIGNAL {
                        self.pending.push_back(m);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(DbusError::Io {
                        addr: self.addr.clone(),
                        op: "poll",
                        err: e.into(),
                    });
                }
            }
        }
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> DbusError + '_ {
        move |err| DbusError::Io {
            addr: self.addr.clone(),
            op,
            err,
        }
    }

    /// SASL EXTERNAL with `uid`, as hex of its decimal text.
    fn auth(&mut self, uid: u32) -> Result<(), DbusError> {
        self.sock
            .set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(self.io("set timeout"))?;
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let hello = format!("\0AUTH EXTERNAL {hex}\r\n");
        self.sock
            .write_all(hello.as_bytes())
            .map_err(self.io("auth"))?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth(self.addr.clone(), line));
        }
        self.sock.write_all(b"BEGIN\r\n").map_err(self.io("auth"))?;
        Ok(())
    }

    /// One auth line, read byte by byte: nothing after it may be consumed.
    fn read_line(&mut self) -> Result<String, DbusError> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 4096 {
                return Err(DbusError::Auth(self.addr.clone(), "line too long".into()));
            }
            let n = self.sock.read(&mut b).map_err(self.io("auth"))?;
            if n == 0 {
                return Err(DbusError::Auth(
                    self.addr.clone(),
                    "connection closed".into(),
                ));
            }
            line.push(b[0]);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Send a method call; returns its serial.
    pub fn send(&mut self, c: &Call) -> Result<u32, DbusError> {
        self.serial += 1;
        let serial = self.serial;
        let mut body = Writer::default();
        let mut sig = String::new();
        for a in &c.args {
            body.value(a)?;
            sig.push_str(&a.signature());
        }
        let field = |code: u8, v: Value| {
            Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
        };
        let mut fields = vec![
            field(1, Value::ObjPath(c.path.into())),
            field(2, Value::str(c.iface)),
            field(3, Value::str(c.member)),
            field(6, Value::str(c.dest)),
        ];
        if !sig.is_empty() {
            fields.push(field(8, Value::Sig(sig)));
        }
        let body_len = u32::try_from(body.buf.len())
            .map_err(|_| WireError::Invalid("body too long".into()))?;
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
        w.buf.extend_from_slice(&body_len.to_le_bytes());
        w.buf.extend_from_slice(&serial.to_le_bytes());
        w.value(&Value::Array("(yv)".into(), fields))?;
        w.pad(8);
        w.buf.extend_from_slice(&body.buf);
        self.sock.write_all(&w.buf).map_err(self.io("send"))?;
        Ok(serial)
    }

    /// Read the next message, waiting until `deadline`.
    fn recv(&mut self, deadline: Instant, what: &str) -> Result<Message, DbusError> {
        let mut fixed = [0u8; 16];
        self.read_exact_until(&mut fixed, deadline, what)?;
        let le = match fixed[0] {
            b'l' => true,
            b'B' => false,
            _ => return Err(WireError::Invalid("bad endianness byte".into()).into()),
        };
        let word = |i: usize| {
            let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
            if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let body_len = word(4) as usize;
        let fields_len = word(12) as usize;
        let header_len = (16 + fields_len).next_multiple_of(8);
        let total = header_len + body_len;
        if total > 128 << 20 {
            return Err(WireError::Invalid("message larger than 128 MiB".into()).into());
        }
        let mut buf = vec![0u8; total];
        buf[..16].copy_from_slice(&fixed);
        self.read_exact_until(&mut buf[16..], deadline, what)?;

        let mut r = Reader::new(&buf[..header_len], le);
        r.pos = 12;
        let Value::Array(_, fields) = r.value("a(yv)")? else {
            return Err(WireError::Invalid("header fields".into()).into());
        };
        let mut m = Message {
            kind: fixed[1],
            serial: word(8),
            reply_serial: None,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            signature: String::new(),
            body: Vec::new(),
        };
        for f in fields {
            let Value::Struct(kv) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (kv.first(), kv.get(1)) else {
                continue;
            };
            let s = v.as_str().map(str::to_owned);
            match code {
                1 => m.path = s,
                2 => m.interface = s,
                3 => m.member = s,
                4 => m.error_name = s,
                5 => m.reply_serial = v.as_u32(),
                8 => m.signature = s.unwrap_or_default(),
                _ => {}
            }
        }
        let mut r = Reader::new(&buf[header_len..], le);
        m.body = r.values(&m.signature)?;
        Ok(m)
    }

    fn read_exact_until(
        &mut self,
        mut buf: &mut [u8],
        deadline: Instant,
        what: &str,
    ) -> Result<(), DbusError> {
        while !buf.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = || DbusError::Timeout {
                addr: self.addr.clone(),
                what: what.to_owned(),
                secs: CALL_TIMEOUT.as_secs(),
            };
            if left.is_zero() {
                return Err(timeout());
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(self.io("set timeout"))?;
            match self.sock.read(buf) {
                Ok(0) => {
                    return Err(DbusError::Io {
                        addr: self.addr.clone(),
                        op: "read",
                        err: std::io::ErrorKind::UnexpectedEof.into(),
                    });
                }
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timeout());
                }
                Err(err) => {
                    return Err(DbusError::Io {
                        addr: self.addr.clone(),
                        op: "read",
                        err,
                    });
                }
            }
        }
        Ok(())
    }

    /// Call a method and wait for its reply, whose body must have
    /// signature `want` ("" for none is not checked: any is accepted).
    pub fn call(&mut self, c: &Call, want: &str) -> Result<Vec<Value>, DbusError> {
        let serial = self.send(c)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        let what = format!("{}.{}", c.iface, c.member);
        loop {
            let m = self.recv(deadline, &what)?;
            if m.reply_serial != Some(serial) {
                if m.kind == SIGNAL {
                    self.pending.push_back(m);
                }
                continue;
            }
            match m.kind {
                METHOD_RETURN => {
                    if !want.is_empty() && m.signature != want {
                        return Err(DbusError::ReplyType(what, m.signature, want.into()));
                    }
                    return Ok(m.body);
                }
                ERROR => {
                    return Err(DbusError::Remote {
                        method: what,
                        name: m.error_name.unwrap_or_default(),
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
                _ => continue,
            }
        }
    }

    /// The next message of any kind (queued signals first), waiting up to
    /// `timeout`.
    pub fn next_message(&mut self, timeout: Duration) -> Result<Message, DbusError> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(m);
        }
        self.recv(Instant::now() + timeout, "a message")
    }

    /// Ask the bus to route signals matching `rule` to us.
    pub fn add_match(&mut self, rule: &str) -> Result<(), DbusError> {
        if self.direct {
            return Ok(()); // no bus to ask: the peer's signals all come to us
        }
        self.call(
            &Call {
                dest: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                iface: "org.freedesktop.DBus",
                member: "AddMatch",
                args: vec![Value::str(rule)],
            },
            "",
        )
        .map(drop)
    }

    /// Wait up to `timeout` for a signal for which `pick` returns Some.
    /// Other signals are dropped.
    pub fn wait_signal<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T, DbusError> {
        while let Some(m) = self.pending.pop_front() {
            if let Some(t) = pick(&m) {
                return Ok(t);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.recv(deadline, what)?;
            if m.kind == SIGNAL
                && let Some(t) = pick(&m)
            {
                return Ok(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(parse_address("unix:path=/run/dbus/system_bus_socket").is_ok());
        assert!(parse_address("unix:abstract=/tmp/dbus-x,guid=1234").is_ok());
        assert!(parse_address("tcp:host=localhost;unix:path=/a%20b").is_ok());
        let err = parse_address("tcp:host=x").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("no unix:path=")));
        assert!(parse_address("unix:path=/a%zz").is_err());
        assert_eq!(unescape("/a%20b"), Some(b"/a b".to_vec()));
    }
}

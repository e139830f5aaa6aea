//! The few protobuf (proto2) messages of CRIU's RPC interface (images/rpc.proto)
//! that capsa sends and reads, encoded and decoded by hand: a request is a
//! handful of varint, string and nested fields, and a response is read for
//! seven of them. This is ~200 lines with no dependency; prost would add
//! prost, prost-derive (a proc macro) and bytes to the static binary for the
//! same two messages.

/// criu_req_type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqType {
    Dump = 1,
    Restore = 2,
    PreDump = 4,
    Notify = 6,
    FeatureCheck = 9,
    Version = 10,
}

impl ReqType {
    fn from_u64(v: u64) -> Option<ReqType> {
        Some(match v {
            1 => ReqType::Dump,
            2 => ReqType::Restore,
            4 => ReqType::PreDump,
            6 => ReqType::Notify,
            9 => ReqType::FeatureCheck,
            10 => ReqType::Version,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ReqType::Dump => "DUMP",
            ReqType::Restore => "RESTORE",
            ReqType::PreDump => "PRE_DUMP",
            ReqType::Notify => "NOTIFY",
            ReqType::FeatureCheck => "FEATURE_CHECK",
            ReqType::Version => "VERSION",
        }
    }
}

/// criu_opts: only the fields capsa sets (numbers from rpc.proto).
#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub images_dir_fd: i32,
    pub pid: Option<i32>,
    pub leave_running: bool,
    pub ext_unix_sk: bool,
    pub tcp_established: bool,
    pub evasive_devices: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub log_level: i32,
    pub log_file: String,
    /// ps (criu_page_server_info): address and port of a page server the
    /// dump sends its pages to (with lazy_pages: the port the dump's own
    /// page server listens on).
    pub page_server: Option<(String, i32)>,
    pub notify_scripts: bool,
    pub root: Option<String>,
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub auto_dedup: bool,
    pub work_dir_fd: Option<i32>,
    /// ext_mnt: (key, val).
    pub ext_mnt: Vec<(String, String)>,
    pub manage_cgroups: bool,
    /// cg_root: (controller, path).
    pub cg_root: Vec<(String, String)>,
    pub rst_sibling: bool,
    /// inherit_fd: (key, fd in criu).
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<u32>,
    pub external: Vec<String>,
    pub empty_ns: Option<u32>,
    pub freeze_cgroup: Option<String>,
    pub lazy_pages: bool,
    pub orphan_pts_master: bool,
}

/// A message being encoded.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn uint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }
    /// int32: a negative value is sign-extended to 64 bits (10 bytes), as proto2 says.
    fn int32(&mut self, field: u32, v: i32) {
        self.uint(field, i64::from(v) as u64);
    }
    /// A proto2 optional bool: only written when set (false is the default).
    fn flag(&mut self, field: u32, v: bool) {
        if v {
            self.uint(field, 1);
        }
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn pair(&mut self, field: u32, a: &str, b: impl FnOnce(&mut Enc)) {
        let mut m = Enc::default();
        m.str(1, a);
        b(&mut m);
        self.bytes(field, &m.0);
    }
}

impl Opts {
    fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.int32(1, self.images_dir_fd);
        if let Some(p) = self.pid {
            e.int32(2, p);
        }
        e.flag(3, self.leave_running);
        e.flag(4, self.ext_unix_sk);
        e.flag(5, self.tcp_established);
        e.flag(6, self.evasive_devices);
        e.flag(7, self.shell_job);
        e.flag(8, self.file_locks);
        e.int32(9, self.log_level);
        e.str(10, &self.log_file);
        if let Some((addr, port)) = &self.page_server {
            let mut m = Enc::default();
            m.str(1, addr);
            m.int32(2, *port);
            e.bytes(11, &m.0);
        }
        e.flag(12, self.notify_scripts);
        if let Some(r) = &self.root {
            e.str(13, r);
        }
        if let Some(p) = &self.parent_img {
            e.str(14, p);
        }
        e.flag(15, self.track_mem);
        e.flag(16, self.auto_dedup);
        if let Some(fd) = self.work_dir_fd {
            e.int32(17, fd);
        }
        for (k, v) in &self.ext_mnt {
            e.pair(23, k, |m| m.str(2, v));
        }
        e.flag(24, self.manage_cgroups);
        for (ctrl, path) in &self.cg_root {
            // No controller: the root for every controller not named.
            let mut m = Enc::default();
            if !ctrl.is_empty() {
                m.str(1, ctrl);
            }
            m.str(2, path);
            e.bytes(25, &m.0);
        }
        e.flag(26, self.rst_sibling);
        for (k, fd) in &self.inherit_fd {
            e.pair(27, k, |m| m.int32(2, *fd));
        }
        if let Some(m) = self.manage_cgroups_mode {
            e.uint(34, u64::from(m));
        }
        for x in &self.external {
            e.str(37, x);
        }
        if let Some(m) = self.empty_ns {
            e.uint(38, u64::from(m));
        }
        if let Some(f) = &self.freeze_cgroup {
            e.str(44, f);
        }
        e.flag(48, self.lazy_pages);
        e.flag(50, self.orphan_pts_master);
        e.0
    }
}

/// criu_req: a request with its options, or the answer to a notification.
pub fn request(t: ReqType, opts: Option<&Opts>) -> Vec<u8> {
    let mut e = Enc::default();
    e.uint(1, t as u64);
    if let Some(o) = opts {
        e.bytes(2, &o.encode());
    }
    if t == ReqType::Notify {
        e.uint(3, 1); // notify_success
    }
    if t == ReqType::FeatureCheck {
        // features{lazy_pages: true}: the one feature capsa asks about.
        let mut f = Enc::default();
        f.flag(2, true);
        e.bytes(5, &f.0);
    }
    e.0
}

/// criu_resp, the fields capsa reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resp {
    pub typ: Option<ReqType>,
    pub raw_type: u64,
    pub success: bool,
    /// criu_restore_resp.pid
    pub restore_pid: Option<i32>,
    /// criu_notify: script and pid.
    pub notify_script: Option<String>,
    pub notify_pid: Option<i32>,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
    /// criu_version: major, minor.
    pub version: Option<(i32, i32)>,
    /// criu_features.lazy_pages of a FEATURE_CHECK answer.
    pub lazy_pages: Option<bool>,
}

/// A field of a message: number and value (varint or length-delimited).
enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// The next field, skipping fixed32/fixed64 ones; None at the end or on bad input.
    fn next(&mut self) -> Option<Result<(u64, Val<'a>), ()>> {
        loop {
            if self.0.is_empty() {
                return None;
            }
            let Some(key) = self.varint() else {
                return Some(Err(()));
            };
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    return Some(self.varint().map(|v| (field, Val::Int(v))).ok_or(()));
                }
                2 => {
                    let Some(n) = self.varint().and_then(|n| usize::try_from(n).ok()) else {
                        return Some(Err(()));
                    };
                    if n > self.0.len() {
                        return Some(Err(()));
                    }
                    let (b, rest) = self.0.split_at(n);
                    self.0 = rest;
                    return Some(Ok((field, Val::Bytes(b))));
                }
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    if n > self.0.len() {
                        return Some(Err(()));
                    }
                    self.0 = &self.0[n..];
                }
                _ => return Some(Err(())),
            }
        }
    }
}

/// Each (field, value) of `buf`, or Err on a malformed message.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Val<'_>)>, ()> {
    let mut d = Dec(buf);
    let mut out = Vec::new();
    while let Some(f) = d.next() {
        out.push(f?);
    }
    Ok(out)
}

fn int32(v: u64) -> i32 {
    v as i64 as i32
}

pub fn decode_resp(buf: &[u8]) -> Result<Resp, String> {
    let bad = |what: &str| format!("malformed criu_resp from criu ({what})");
    let mut r = Resp::default();
    for (field, val) in fields(buf).map_err(|_| bad("message"))? {
        match (field, val) {
            (1, Val::Int(v)) => {
                r.raw_type = v;
                r.typ = ReqType::from_u64(v);
            }
            (2, Val::Int(v)) => r.success = v != 0,
            (4, Val::Bytes(b)) => {
                for (f, v) in fields(b).map_err(|_| bad("restore"))? {
                    if let (1, Val::Int(v)) = (f, v) {
                        r.restore_pid = Some(int32(v));
                    }
                }
            }
            (5, Val::Bytes(b)) => {
                for (f, v) in fields(b).map_err(|_| bad("notify"))? {
                    match (f, v) {
                        (1, Val::Bytes(s)) => {
                            r.notify_script = Some(String::from_utf8_lossy(s).into_owned())
                        }
                        (2, Val::Int(v)) => r.notify_pid = Some(int32(v)),
                        _ => {}
                    }
                }
            }
            (7, Val::Int(v)) => r.cr_errno = Some(int32(v)),
            (8, Val::Bytes(b)) => {
                for (f, v) in fields(b).map_err(|_| bad("features"))? {
                    if let (2, Val::Int(v)) = (f, v) {
                        r.lazy_pages = Some(v != 0);
                    }
                }
            }
            (9, Val::Bytes(s)) => r.cr_errmsg = Some(String::from_utf8_lossy(s).into_owned()),
            (10, Val::Bytes(b)) => {
                let (mut major, mut minor) = (0, 0);
                for (f, v) in fields(b).map_err(|_| bad("version"))? {
                    match (f, v) {
                        (1, Val::Int(v)) => major = int32(v),
                        (2, Val::Int(v)) => minor = int32(v),
                        _ => {}
                    }
                }
                r.version = Some((major, minor));
            }
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_match_protoc() {
        // criu_req{type: NOTIFY, notify_success: true}
        assert_eq!(request(ReqType::Notify, None), [0x08, 0x06, 0x18, 0x01]);
        let o = Opts {
            images_dir_fd: 5,
            pid: Some(300),
            leave_running: true,
            log_level: 4,
            log_file: "d".into(),
            inherit_fd: vec![("k".into(), -1)],
            ..Opts::default()
        };
        let b = o.encode();
        // 1:5, 2:300 (0xac 0x02), 3:true, 9:4, 10:"d"
        assert_eq!(
            &b[..13],
            &[
                0x08, 5, 0x10, 0xac, 0x02, 0x18, 1, 0x48, 4, 0x52, 1, b'd', 0xda
            ]
        );
        // inherit_fd (27, wire 2: key 0xda 0x01), len 14: key "k", fd -1 as ten bytes
        assert_eq!(&b[13..16], &[0x01, 14, 0x0a]);
        assert_eq!(b.len(), 16 + 13);
    }

    #[test]
    fn response_decodes() {
        // type RESTORE, success, restore{pid 42}, cr_errno 0
        let buf = [0x08, 2, 0x10, 1, 0x22, 2, 0x08, 42, 0x38, 0];
        let r = decode_resp(&buf).expect("decodes");
        assert_eq!(r.typ, Some(ReqType::Restore));
        assert!(r.success);
        assert_eq!(r.restore_pid, Some(42));
        // notify{script "post-dump", pid 7}
        let mut n = vec![0x08, 6, 0x10, 1, 0x2a, 13, 0x0a, 9];
        n.extend_from_slice(b"post-dump");
        n.extend_from_slice(&[0x10, 7]);
        let r = decode_resp(&n).expect("decodes");
        assert_eq!(r.notify_script.as_deref(), Some("post-dump"));
        assert_eq!(r.notify_pid, Some(7));
        assert!(decode_resp(&[0x0a, 5, 1]).is_err());
        // type FEATURE_CHECK, success, features{mem_track false, lazy_pages true}
        let r = decode_resp(&[0x08, 9, 0x10, 1, 0x42, 4, 0x08, 0, 0x10, 1]).expect("decodes");
        assert_eq!(r.typ, Some(ReqType::FeatureCheck));
        assert_eq!(r.lazy_pages, Some(true));
    }

    #[test]
    fn page_server_and_feature_check_encode() {
        // criu_req{type: FEATURE_CHECK, features{lazy_pages: true}}
        assert_eq!(
            request(ReqType::FeatureCheck, None),
            [0x08, 9, 0x2a, 2, 0x10, 1]
        );
        let o = Opts {
            images_dir_fd: 5,
            log_file: "d".into(),
            page_server: Some(("::1".into(), 27)),
            ..Opts::default()
        };
        let b = o.encode();
        // ... 10:"d", then 11 (key 0x5a), len 7: address "::1", port 27
        let at = b.iter().position(|&x| x == 0x5a).expect("field 11");
        assert_eq!(
            &b[at..at + 9],
            &[0x5a, 7, 0x0a, 3, b':', b':', b'1', 0x10, 27]
        );
    }
}

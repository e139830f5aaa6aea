//! capsa's own D-Bus client (src/cgroups/systemd/{dbus,wire}.rs) against a real bus:
//! a private `dbus-daemon --session` per test, real calls, and libdbus's tools
//! (dbus-send, dbus-monitor) on the other end as the reference: what dbus-send
//! marshals, our reader must decode to the same values; what we marshal,
//! dbus-monitor must print as the same values. Runs on any host (no systemd needed).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capsa::__private::dbus::{Call, Connection};
use capsa::__private::wire::Value;
use common::{TempDir, skip};

/// A private bus daemon, killed (by its pid) when dropped.
struct Bus {
    addr: String,
    pid: i32,
    _dir: TempDir,
}

impl Bus {
    fn start() -> Option<Bus> {
        if Command::new("dbus-daemon")
            .arg("--version")
            .output()
            .is_err()
        {
            skip("dbus-daemon is not installed (Debian package dbus)");
            return None;
        }
        let dir = TempDir::new("dbus");
        let sock: PathBuf = dir.path().join("bus");
        let out = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .arg(format!("--address=unix:path={}", sock.display()))
            .stdin(Stdio::null())
            .output()
            .expect("run dbus-daemon");
        assert!(out.status.success(), "dbus-daemon: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let addr = lines.next().expect("address line").trim().to_owned();
        let pid = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("pid line");
        Some(Bus {
            addr,
            pid,
            _dir: dir,
        })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // SAFETY: kill with the pid of the daemon this test started.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
    }
}

fn dbus_call<'a>(member: &'a str, args: Vec<Value>) -> Call<'a> {
    Call {
        dest: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        iface: "org.freedesktop.DBus",
        member,
        args,
    }
}

#[test]
fn hello_names_and_errors_match_dbus_send() {
    let Some(bus) = Bus::start() else { return };
    let mut c = Connection::open(&bus.addr).expect("connect");
    assert!(c.unique_name.starts_with(":1."), "{}", c.unique_name);

    let names = c
        .call(&dbus_call("ListNames", vec![]), "as")
        .expect("ListNames");
    let Some(Value::Array(elem, names)) = names.first() else {
        panic!("ListNames: {names:?}")
    };
    assert_eq!(elem, "s");
    let ours: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    assert!(ours.contains(&"org.freedesktop.DBus"), "{ours:?}");
    assert!(ours.contains(&c.unique_name.as_str()), "{ours:?}");
    // libdbus's view of the same bus lists our connection too.
    let out = Command::new("dbus-send")
        .args([
            &format!("--bus={}", bus.addr),
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames",
        ])
        .output()
        .expect("dbus-send");
    let reference = String::from_utf8_lossy(&out.stdout);
    assert!(
        reference.contains(&format!("string \"{}\"", c.unique_name)),
        "{reference}"
    );

    let owner = c
        .call(
            &dbus_call("GetNameOwner", vec![Value::str("org.freedesktop.DBus")]),
            "s",
        )
        .expect("GetNameOwner");
    assert_eq!(owner, [Value::str("org.freedesktop.DBus")]);

    // An error reply: its name and message, as dbus-send reports them.
    let err = c
        .call(
            &dbus_call("GetNameOwner", vec![Value::str("org.example.Nobody")]),
            "s",
        )
        .expect_err("no owner");
    assert_eq!(
        err.remote_name(),
        Some("org.freedesktop.DBus.Error.NameHasNoOwner")
    );
    let out = Command::new("dbus-send")
        .args([
            &format!("--bus={}", bus.addr),
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetNameOwner",
            "string:org.example.Nobody",
        ])
        .output()
        .expect("dbus-send");
    let reference = String::from_utf8_lossy(&out.stderr);
    assert!(
        reference.contains("org.freedesktop.DBus.Error.NameHasNoOwner"),
        "{reference}"
    );
    let msg = err.to_string();
    assert!(msg.contains("org.example.Nobody"), "{msg}");

    // EXTERNAL auth as a uid the socket's credentials do not prove is refused.
    let refused = Connection::open_as(&bus.addr, 4_000_123)
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("authentication refused")),
        "{refused:?}"
    );
    // A reply of another signature than asked for is an error, not a guess.
    let wrong = c.call(&dbus_call("GetId", vec![]), "u").expect_err("type");
    assert!(wrong.to_string().contains("expected \"u\""), "{wrong}");
    // The connection still works after errors.
    c.call(&dbus_call("GetId", vec![]), "s").expect("GetId");
}

/// What dbus-send (libdbus) marshals, we decode to the same values.
#[test]
fn decodes_what_libdbus_marshals() {
    let Some(bus) = Bus::start() else { return };
    let mut rx = Connection::open(&bus.addr).expect("connect");
    let out = Command::new("dbus-send")
        .args([
            &format!("--bus={}", bus.addr),
            "--type=method_call",
            &format!("--dest={}", rx.unique_name),
            "/test/capsa",
            "test.Capsa.Types",
            "string:héllo",
            "uint64:18446744073709551615",
            "int32:-5",
            "boolean:true",
            "byte:7",
            "double:1.5",
            "objpath:/a/b",
            "array:string:a,b,c",
            "array:uint32:1,2",
            "dict:string:uint64:x,1,y,2",
            "variant:uint64:42",
        ])
        .output()
        .expect("dbus-send");
    assert!(out.status.success(), "{out:?}");
    let m = next_call(&mut rx, "Types");
    assert_eq!(m.signature, "stibydoasaua{st}v");
    let dict = |k: &str, v: u64| Value::Struct(vec![Value::str(k), Value::U64(v)]);
    assert_eq!(
        m.body,
        [
            Value::str("héllo"),
            Value::U64(u64::MAX),
            Value::I32(-5),
            Value::Bool(true),
            Value::Byte(7),
            Value::Double(1.5),
            Value::ObjPath("/a/b".into()),
            Value::Array(
                "s".into(),
                vec![Value::str("a"), Value::str("b"), Value::str("c")]
            ),
            Value::Array("u".into(), vec![Value::U32(1), Value::U32(2)]),
            Value::Array("{st}".into(), vec![dict("x", 1), dict("y", 2)]),
            Value::Variant(Box::new(Value::U64(42))),
        ]
    );
}

fn next_call(c: &mut Connection, member: &str) -> capsa::__private::dbus::Message {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = c.next_message(left).expect("a message");
        if m.member.as_deref() == Some(member) {
            return m;
        }
    }
}

/// What we marshal (systemd's StartTransientUnit arguments), libdbus decodes
/// to the same values: dbus-monitor prints the call as it parsed it.
#[test]
fn libdbus_decodes_what_we_marshal() {
    let Some(bus) = Bus::start() else { return };
    let mut rx = Connection::open(&bus.addr).expect("connect rx");
    let mut tx = Connection::open(&bus.addr).expect("connect tx");
    let mut monitor = Command::new("dbus-monitor")
        .args([
            "--address",
            &bus.addr,
            "type='method_call',interface='test.Capsa'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-monitor");
    // A monitor leaves the list of names once it is one (BecomeMonitor):
    // give it time to get there.
    std::thread::sleep(Duration::from_millis(1500));
    let prop = |n: &str, v: Value| Value::Struct(vec![Value::str(n), Value::Variant(Box::new(v))]);
    let args = vec![
        Value::str("runc-x.scope"),
        Value::str("replace"),
        Value::Array(
            "(sv)".into(),
            vec![
                prop("Description", Value::str("libcontainer container x")),
                prop("PIDs", Value::Array("u".into(), vec![Value::U32(4242)])),
                prop("Delegate", Value::Bool(true)),
                prop("MemoryMax", Value::U64(104_857_600)),
                prop(
                    "AllowedCPUs",
                    Value::Array("y".into(), vec![Value::Byte(3), Value::Byte(0x80)]),
                ),
                prop(
                    "DeviceAllow",
                    Value::Array(
                        "(ss)".into(),
                        vec![Value::Struct(vec![
                            Value::str("char-pts"),
                            Value::str("rwm"),
                        ])],
                    ),
                ),
                prop("CPUQuotaPerSecUSec", Value::U64(u64::MAX)),
            ],
        ),
        Value::Array("(sa(sv))".into(), vec![]),
    ];
    tx.send(&Call {
        dest: &rx.unique_name.clone(),
        path: "/test/capsa",
        iface: "test.Capsa",
        member: "Start",
        args: args.clone(),
    })
    .expect("send");
    // Our own reader agrees with our writer.
    let m = next_call(&mut rx, "Start");
    assert_eq!(m.signature, "ssa(sv)a(sa(sv))");
    assert_eq!(m.body, args);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill the dbus-monitor this test spawned.
    unsafe { libc::kill(monitor.id() as i32, libc::SIGTERM) };
    let out = monitor_output(&mut monitor);
    let flat: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "member=Start",
        "string \"runc-x.scope\"",
        "string \"replace\"",
        "string \"PIDs\" variant array [ uint32 4242 ]",
        "string \"Delegate\" variant boolean true",
        "string \"MemoryMax\" variant uint64 104857600",
        "string \"AllowedCPUs\" variant array of bytes [ 03 80 ]",
        "string \"DeviceAllow\" variant array [ struct { string \"char-pts\" string \"rwm\" } ]",
        "string \"CPUQuotaPerSecUSec\" variant uint64 18446744073709551615",
    ] {
        assert!(
            flat.contains(want),
            "{want:?} not in dbus-monitor's output:\n{out}"
        );
    }
}

fn monitor_output(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut s);
    }
    let _ = child.wait();
    s
}

/// AddMatch routes a signal to us; one that does not match is not
/// waited for, and a wait with nothing coming times out.
#[test]
fn signal_match_and_timeout() {
    let Some(bus) = Bus::start() else { return };
    let mut c = Connection::open(&bus.addr).expect("connect");
    c.add_match("type='signal',interface='test.Capsa',member='JobRemoved'")
        .expect("AddMatch");
    for (member, arg) in [("Other", "string:no"), ("JobRemoved", "string:/job/7")] {
        let out = Command::new("dbus-send")
            .args([
                &format!("--bus={}", bus.addr),
                "--type=signal",
                "/test/capsa",
                &format!("test.Capsa.{member}"),
                arg,
                "string:done",
            ])
            .output()
            .expect("dbus-send");
        assert!(out.status.success(), "{out:?}");
    }
    let result = c
        .wait_signal(Duration::from_secs(10), "JobRemoved", |m| {
            (m.member.as_deref() == Some("JobRemoved")
                && m.body.first().and_then(Value::as_str) == Some("/job/7"))
            .then(|| m.body.get(1).cloned())
        })
        .expect("signal");
    assert_eq!(result, Some(Value::str("done")));
    let t0 = Instant::now();
    let err = c
        .wait_signal(Duration::from_millis(300), "JobRemoved of /job/8", |_| {
            Some(())
        })
        .expect_err("nothing comes");
    assert!(
        err.to_string()
            .contains("no answer to JobRemoved of /job/8"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
}

//! The library's public API, driven in-process as an engine would: only
//! `capsa::` items the crate root exports (this file would not compile if an
//! internal one were needed; it does not touch `capsa::__private`, and
//! `api_users_stay_on_the_public_surface` checks that neither do the binary
//! and the examples). The harness (tests/common) only builds the busybox
//! rootfs, the state root and cleans up.
//!
//! `harness = false`: a program that embeds capsa must call
//! `capsa::run_if_asked()` first thing in `main` (every workload is exec'd
//! through the running executable), which libtest's own `main` would not.
//! The small runner below prints libtest's lines, which scripts/test.sh
//! counts.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use capsa::oci_spec::runtime::Spec;
use capsa::{CreateOptions, Error, ExecOptions, ExitStatus, Runtime, Status, Stdio};
use common::Ctx;

/// The test config as an in-memory Spec running `sh -c script`.
fn spec(ctx: &Ctx, id: &str, script: &str) -> Spec {
    let mut v = ctx.config.clone();
    v["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    v["linux"]["cgroupsPath"] = serde_json::json!(common::cgroup_path_for(id));
    // No root.path: the rootfs is given beside the spec.
    v.as_object_mut().map(|o| o.remove("root"));
    serde_json::from_value(v).expect("spec")
}

fn rt(ctx: &Ctx) -> Runtime {
    Runtime::new(ctx.root())
}

fn read_all(f: Option<std::fs::File>) -> String {
    let mut s = String::new();
    f.expect("a piped stream")
        .read_to_string(&mut s)
        .expect("read");
    s
}

/// A spec in memory, no config.json anywhere in the bundle, stdout piped
/// back, exit status through the pidfd, and nothing left after delete.
fn spec_in_memory_with_piped_stdout() {
    let ctx = Ctx::new("api-spec");
    let id = ctx.id.clone();
    let rt = rt(&ctx);
    let mut opts = CreateOptions::with_spec(
        spec(&ctx, &id, "echo out; echo err >&2; exit 3"),
        ctx.rootfs(),
    );
    opts.stdout = Stdio::Piped;
    opts.stderr = Stdio::Piped;
    opts.stdin = Stdio::Null;
    let mut c = rt.create(&id, &opts).expect("create");
    assert!(!ctx.bundle().join("config.json").exists());
    assert_eq!(c.state().expect("state").status, Status::Created);
    // The bundle defaults to the rootfs's parent directory.
    let st = c.state().expect("state");
    assert_eq!(st.bundle, ctx.bundle().canonicalize().expect("canonical"));
    let (out, err) = (c.take_stdout(), c.take_stderr());
    c.start().expect("start");
    assert_eq!(read_all(out), "out\n");
    assert_eq!(read_all(err), "err\n");
    assert_eq!(c.wait().expect("wait"), ExitStatus::Exited(3));
    // Known once: later calls answer from the handle.
    assert_eq!(c.wait().expect("wait again").code(), Some(3));
    assert_eq!(rt.state(&id).expect("state").status, Status::Stopped);
    c.delete(false).expect("delete");
    ctx.assert_nothing_left(&id);
}

/// exec_process: a handle with its own pipes and status, from the spec
/// kept in the state directory (the bundle has no config.json).
fn exec_process_from_spec_in_memory() {
    let ctx = Ctx::new("api-exec");
    let id = ctx.id.clone();
    let rt = rt(&ctx);
    let mut opts = CreateOptions::with_spec(spec(&ctx, &id, "sleep 1000"), ctx.rootfs());
    opts.stdout = Stdio::Null;
    let c = rt.create(&id, &opts).expect("create");
    c.start().expect("start");
    let mut e = ExecOptions::args(["sh", "-c", "read x; echo got $x $FOO; exit 7"]);
    e.env.push("FOO=bar".into());
    e.stdin = Stdio::Piped;
    e.stdout = Stdio::Piped;
    let mut p = c.exec(&e).expect("exec");
    {
        let mut stdin = p.take_stdin().expect("stdin");
        std::io::Write::write_all(&mut stdin, b"hello\n").expect("write stdin");
    }
    assert_eq!(read_all(p.take_stdout()), "got hello bar\n");
    assert_eq!(p.wait().expect("wait").code(), Some(7));
    assert!(c.pids().expect("pids").contains(&c.pid()));
    c.kill(capsa::parse_signal("KILL").expect("signal"))
        .expect("kill");
    assert_eq!(c.wait().expect("wait"), ExitStatus::Signaled(9));
    rt.delete(&id, false).expect("delete");
    ctx.assert_nothing_left(&id);
}

/// The variants an engine matches on, with the CLI's texts.
fn errors_are_typed_and_keep_the_cli_text() {
    let ctx = Ctx::new("api-err");
    let id = ctx.id.clone();
    let rt = rt(&ctx);
    match rt.state("no-such-container") {
        Err(Error::NotFound { id, message }) => {
            assert_eq!(id, "no-such-container");
            assert_eq!(message, "container does not exist");
        }
        other => panic!("state of nothing: {other:?}"),
    }
    // An invalid spec: the field is named, nothing is made.
    let mut bad = spec(&ctx, &id, "true");
    let mut process = bad.process().clone().expect("process");
    process.set_args(Some(Vec::new()));
    bad.set_process(Some(process));
    match rt.create(&id, &CreateOptions::with_spec(bad, ctx.rootfs())) {
        Err(Error::InvalidConfig { field, message }) => {
            assert_eq!(field, "process.args");
            assert!(message.contains("process.args"), "{message}");
        }
        other => panic!("empty args: {:?}", other.map(|c| c.id().to_string())),
    }
    ctx.assert_nothing_left(&id);
    match rt.create(
        "bad/id",
        &CreateOptions::with_spec(spec(&ctx, &id, "true"), ctx.rootfs()),
    ) {
        Err(Error::InvalidArgument { .. }) => {}
        other => panic!("bad id: {:?}", other.map(|c| c.id().to_string())),
    }
    let mut opts = CreateOptions::with_spec(spec(&ctx, &id, "sleep 1000"), ctx.rootfs());
    opts.stdout = Stdio::Null;
    let c = rt.create(&id, &opts).expect("create");
    match rt.create(&id, &opts) {
        Err(Error::AlreadyExists { id: got, .. }) => assert_eq!(got, id),
        other => panic!("second create: {:?}", other.map(|c| c.id().to_string())),
    }
    c.start().expect("start");
    match c.start() {
        Err(e @ Error::WrongState { .. }) => {
            assert_eq!(e.to_string(), "cannot start an already running container")
        }
        other => panic!("second start: {other:?}"),
    }
    match rt.delete(&id, false) {
        Err(Error::WrongState { message, .. }) => {
            assert!(
                message.contains("that is not stopped: running"),
                "{message}"
            )
        }
        other => panic!("delete running: {other:?}"),
    }
    c.kill(9).expect("kill");
    c.wait().expect("wait");
    match c.kill(15) {
        Err(e @ Error::NotRunning { .. }) => assert_eq!(e.to_string(), "container not running"),
        other => panic!("kill stopped: {other:?}"),
    }
    assert!(matches!(
        capsa::parse_signal("SIGNOPE"),
        Err(Error::InvalidArgument { .. })
    ));
    c.delete(false).expect("delete");
    ctx.assert_nothing_left(&id);
}

/// A bundle with config.json, the caller's own fd as stdout, list and the
/// events iterator (one stats event).
fn bundle_fd_stdout_list_and_events() {
    let mut ctx = Ctx::new("api-bundle");
    let id = ctx.id.clone();
    ctx.sh("echo to-the-file; sleep 1000");
    ctx.write_config();
    let rt = rt(&ctx);
    let out_path = ctx.scratch("out/stdout");
    let file = std::fs::File::create(&out_path).expect("create out file");
    let mut opts = CreateOptions::with_bundle(ctx.bundle());
    opts.stdout = Stdio::from(file);
    let c = rt.create(&id, &opts).expect("create");
    drop(opts); // our copy of the fd: the init holds its own
    c.start().expect("start");
    common::wait_for_text(&out_path, "to-the-file", Duration::from_secs(10));
    let list = rt.list().expect("list");
    assert!(
        list.iter()
            .any(|s| s.id == id && s.status == Status::Running && s.pid == c.pid()),
        "{list:?}"
    );
    let events: Vec<_> = rt
        .events(&id, true, Duration::from_secs(1))
        .expect("events")
        .collect::<capsa::Result<_>>()
        .expect("one event");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind(), capsa::EventKind::Stats);
    assert!(
        events[0]
            .to_json()
            .starts_with(&format!("{{\"type\":\"stats\",\"id\":\"{id}\""))
    );
    c.pause().expect("pause");
    assert_eq!(c.state().expect("state").status, Status::Paused);
    c.resume().expect("resume");
    c.delete(true).expect("delete --force");
    ctx.assert_nothing_left(&id);
}

/// Containers waited for, read and deleted from several threads at once.
/// They are created before any other thread exists: until create's child
/// is fork-safe (issue 14's other half), a clone while another thread
/// holds the allocator's lock can deadlock the child.
fn threads_wait_for_their_own_containers() {
    let ctx = Ctx::new("api-threads");
    let rt = rt(&ctx);
    let mut made = Vec::new();
    for n in 0..3 {
        let id = ctx.new_id("api-thr");
        let script = format!("echo n={n}; exit {n}");
        let mut opts = CreateOptions::with_spec(spec(&ctx, &id, &script), ctx.rootfs());
        opts.stdout = Stdio::Piped;
        let mut c = rt.create(&id, &opts).expect("create");
        let out = c.take_stdout();
        made.push((c, out));
    }
    let handles: Vec<_> = made
        .into_iter()
        .map(|(c, out)| {
            c.start().expect("start");
            std::thread::spawn(move || {
                let text = read_all(out);
                let status = c.wait().expect("wait");
                c.delete(false).expect("delete");
                (text, status)
            })
        })
        .collect();
    for (n, h) in handles.into_iter().enumerate() {
        let (text, status) = h.join().expect("thread");
        assert_eq!(text, format!("n={n}\n"));
        assert_eq!(status, ExitStatus::Exited(n as i32));
    }
    assert!(rt.list().expect("list").is_empty());
}

/// Two threads waiting on one container both get its status (the second
/// waits for the first's answer rather than finding it reaped).
fn two_waiters_get_the_same_status() {
    let ctx = Ctx::new("api-2wait");
    let id = ctx.id.clone();
    let rt = rt(&ctx);
    let mut opts = CreateOptions::with_spec(spec(&ctx, &id, "sleep 0.3; exit 5"), ctx.rootfs());
    opts.stdout = Stdio::Null;
    let c = std::sync::Arc::new(rt.create(&id, &opts).expect("create"));
    c.start().expect("start");
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let c = std::sync::Arc::clone(&c);
            std::thread::spawn(move || c.wait().expect("wait"))
        })
        .collect();
    for w in waiters {
        assert_eq!(w.join().expect("thread"), ExitStatus::Exited(5));
    }
    assert_eq!(c.try_wait().expect("try_wait"), Some(ExitStatus::Exited(5)));
    rt.delete(&id, false).expect("delete");
    ctx.assert_nothing_left(&id);
}

/// The binary and the examples use the public API only: no `__private`
/// path, no internal module path.
fn api_users_stay_on_the_public_surface() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // (Not this file: it holds the list. It compiles against the public
    // items only, which is its own check.)
    let mut files = vec![
        dir.join("src/main.rs"),
        dir.join("src/cli.rs"),
        dir.join("src/log.rs"),
    ];
    for e in std::fs::read_dir(dir.join("examples"))
        .expect("examples/")
        .flatten()
    {
        files.push(e.path());
    }
    let internal = [
        "__private",
        "capsa::runtime::",
        "capsa::state::",
        "capsa::sys::",
        "capsa::process::",
        "capsa::cgroups::",
        "capsa::console::",
        "capsa::bundle::",
        "capsa::error::",
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for needle in internal {
            assert!(!code.contains(needle), "{} uses {needle}", f.display());
        }
    }
}

/// What the crate docs promise about threads, checked by the compiler.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
    send_sync::<capsa::Container>();
    send_sync::<capsa::Process>();
    send_sync::<Error>();
    const fn send<T: Send>() {}
    send::<capsa::Events>();
    send::<CreateOptions>();
};

fn main() {
    // First thing: the container workloads are exec'd through this binary.
    capsa::run_if_asked();
    let tests: &[(&str, fn())] = &[
        (
            "api_users_stay_on_the_public_surface",
            api_users_stay_on_the_public_surface,
        ),
        (
            "bundle_fd_stdout_list_and_events",
            bundle_fd_stdout_list_and_events,
        ),
        (
            "errors_are_typed_and_keep_the_cli_text",
            errors_are_typed_and_keep_the_cli_text,
        ),
        (
            "exec_process_from_spec_in_memory",
            exec_process_from_spec_in_memory,
        ),
        (
            "spec_in_memory_with_piped_stdout",
            spec_in_memory_with_piped_stdout,
        ),
        (
            "two_waiters_get_the_same_status",
            two_waiters_get_the_same_status,
        ),
        (
            "threads_wait_for_their_own_containers",
            threads_wait_for_their_own_containers,
        ),
    ];
    // libtest's filter: the first argument that is not a flag.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let started = Instant::now();
    let (mut passed, mut failed, mut filtered) = (0, Vec::new(), 0);
    println!("\nrunning {} tests", tests.len());
    for (name, f) in tests {
        if filter.as_deref().is_some_and(|p| !name.contains(p)) {
            filtered += 1;
            continue;
        }
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

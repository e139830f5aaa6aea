//! The OCI Runtime Command Line Interface document (runtime-tools
//! docs/command-line-interface.md, version 1.0.0): global usage, create's options, standard
//! streams and LISTEN_FDS, the console socket, state, kill, character encodings.

use crate::bundle::{Kv, trunc};
use crate::harness::{Ctx, R, Verdict, ensure, eq, io, must_fail, run_cmd};
use crate::sock::console_run;
use crate::table::{MUST, SHOULD, Test, t};
use serde_json::{Value, json};
use std::fs;
use std::io::Seek;
use std::process::{Command, Stdio};

/// A file with content to give a runtime as stdin; the offset of the shared open file
/// description shows afterwards whether the runtime read it.
fn stdin_file(c: &Ctx, name: &str) -> Result<fs::File, Verdict> {
    let p = c.dir.join(name);
    io(
        fs::write(&p, "data the runtime must not read\n"),
        "write the stdin file",
    )?;
    io(fs::File::open(&p), "open the stdin file")
}

fn unread(f: &mut fs::File, what: &str) -> R {
    let pos = io(f.stream_position(), "lseek the stdin file")?;
    eq(
        &format!("{what}: offset of its stdin after the call"),
        pos,
        0,
    )
}

/// `kill` with a signal and wait for the trapping checker to report it.
fn kill_reports(c: &mut Ctx, args: fn(&str) -> Vec<String>, want: &str) -> R {
    let b = c.bundle_ops(&["trapterm"])?;
    let id = c.id();
    c.must_create(&b, &id)?;
    c.must_start(&id)?;
    c.wait_output(&b, "ready=1")?;
    let a = args(&id);
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = c.rt(&a);
    ensure(o.ok(), format!("{}: {}", a.join(" "), o.brief()))?;
    c.wait_status(&id, "stopped", 10)?;
    ensure(
        b.stdout().contains(want),
        format!(
            "the container did not report {want}: {}",
            trunc(&b.stdout(), 200)
        ),
    )
}

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "cli.unknown-command-errors",
            "cli#global-usage",
            MUST,
            "If the runtime is invoked with an unrecognized command, it MUST exit with a nonzero exit code.",
            |c| must_fail(&c.rt(&["oct-not-a-command"]), "an unrecognized command"),
        ),
        t(
            "cli.bundle-default-cwd",
            "cli#create",
            MUST,
            "create --bundle <PATH>: override the path to the bundle directory (defaults to the current working directory).",
            |c| {
                let b = c.bundle_ops(&["args"])?;
                b.write()?;
                let id = c.id();
                let o = c.rt_with(&["create", &id], &b.dir, None);
                ensure(
                    o.ok(),
                    format!(
                        "create in the bundle directory without --bundle: {}",
                        o.brief()
                    ),
                )?;
                eq(
                    "state bundle",
                    c.state(&id)?["bundle"].as_str(),
                    Some(b.path()),
                )
            },
        ),
        t(
            "cli.pid-file",
            "cli#create",
            MUST,
            "--pid-file <PATH>: the runtime MUST write the container PID to this path.",
            |c| {
                let b = c.bundle_ops(&["sleep:30"])?;
                b.write()?;
                let id = c.id();
                let pf = c.dir.join("pidfile");
                let o = c.create_nowrite(&b, &id, &["--pid-file", pf.to_str().unwrap_or("")])?;
                ensure(o.ok(), format!("create: {}", o.brief()))?;
                let got = io(fs::read_to_string(&pf), "the pid file")?;
                eq(
                    "pid file",
                    got.trim().parse::<i64>().ok(),
                    Some(c.pid(&id)? as i64),
                )
            },
        ),
        t(
            "cli.stdio-passthrough",
            "cli#create",
            MUST,
            "If process.terminal is not true, the runtime MUST pass its stdin, stdout (and, when create exits zero, stderr) file descriptors through to the container process without manipulation or modification.",
            |c| {
                let b = c.bundle_ops(&["readstdin", "stderr:to-stderr-oct"])?;
                b.write()?;
                let id = c.id();
                io(
                    fs::write(b.dir.join("stdin"), "from-stdin-oct"),
                    "write stdin",
                )?;
                let mut cmd = Command::new(&c.env.rt);
                c.env.as_user(&mut cmd);
                cmd.arg("--root")
                    .arg(&c.env.root)
                    .args(["create", "--bundle", b.path(), &id]);
                let stdin = Stdio::from(io(fs::File::open(b.dir.join("stdin")), "open stdin")?);
                let o = run_cmd(
                    cmd,
                    &b.dir.join("stdout"),
                    &b.dir.join("stderr"),
                    Some(stdin),
                );
                ensure(o.ok(), format!("create failed: {}", o.brief()))?;
                c.must_start(&id)?;
                c.wait_status(&id, "stopped", 10)?;
                ensure(
                    b.stdout().contains("stdin=from-stdin-oct"),
                    format!(
                        "stdin/stdout not passed through: {}",
                        trunc(&b.stdout(), 200)
                    ),
                )?;
                ensure(
                    b.stderr().contains("to-stderr-oct"),
                    format!("stderr not passed through: {}", trunc(&b.stderr(), 200)),
                )
            },
        ),
        t(
            "cli.stdin-not-read",
            "cli#start",
            MUST,
            "start, state, kill, delete: stdin: \"The runtime MUST NOT attempt to read from its stdin.\"",
            |c| {
                let (_b, id) = c.created()?;
                for (op, args) in [
                    ("state", vec!["state", id.as_str()]),
                    ("start", vec!["start", id.as_str()]),
                    ("kill", vec!["kill", id.as_str(), "KILL"]),
                ] {
                    let mut f = stdin_file(c, op)?;
                    let dup = io(f.try_clone(), "dup the stdin file")?;
                    let o = c.rt_with(&args, &c.dir, Some(Stdio::from(dup)));
                    ensure(o.ok(), format!("{op}: {}", o.brief()))?;
                    unread(&mut f, op)?;
                }
                c.wait_status(&id, "stopped", 10)?;
                let mut f = stdin_file(c, "delete")?;
                let dup = io(f.try_clone(), "dup the stdin file")?;
                let o = c.rt_with(&["delete", &id], &c.dir, Some(Stdio::from(dup)));
                ensure(o.ok(), format!("delete: {}", o.brief()))?;
                unread(&mut f, "delete")
            },
        ),
        t(
            "cli.create-terminal-stdin-not-read",
            "cli#create",
            MUST,
            "create, if process.terminal is true: stdin: \"The runtime MUST NOT attempt to read from its stdin.\"",
            |c| {
                let mut b = c.bundle_ops(&["tty", "exit:0"])?;
                let mut f = stdin_file(c, "create-stdin")?;
                let dup = io(f.try_clone(), "dup the stdin file")?;
                console_run(c, &mut b, "winsize=", Some(dup))?;
                unread(&mut f, "create")
            },
        ),
        t(
            "cli.listen-fds",
            "cli#create",
            MUST,
            "LISTEN_FDS: \"LISTEN_FDS=2 would mean that the runtime MUST pass file descriptors 3 and 4 to the container process\" (LISTEN_FDS=1: fd 3).",
            |c| {
                let b = c.bundle_ops(&["fds", "readlink:/proc/self/fd/3"])?;
                let prefix = format!(
                    "exec 3<{}/config.json; export LISTEN_PID=$$ LISTEN_FDS=1",
                    b.path()
                );
                c.run_via_sh(&b, &prefix)?;
                let out = b.stdout();
                ensure(
                    out.contains("config.json"),
                    format!("fd 3 was not passed to the container: {}", trunc(&out, 300)),
                )
            },
        ),
        t(
            "cli.console-socket",
            "cli#create",
            MUST,
            "--console-socket: the runtime MUST pass the pseudoterminal master through the socket (SCM_RIGHTS); the container process has the terminal as its standard streams.",
            |c| {
                let mut b = c.bundle_ops(&["tty", "exit:0"])?;
                let con = console_run(c, &mut b, "winsize=", None)?;
                for fd in 0..3 {
                    eq(
                        &format!("isatty({fd})"),
                        con.kv.get(&format!("tty.{fd}"))?,
                        "1",
                    )?;
                }
                Ok(())
            },
        ),
        t(
            "cli.console-socket-json-request",
            "cli#console-socket",
            MUST,
            "The normal data of all messages MUST be UTF-8 JSON; a terminal request MUST contain type \"terminal\" and container (the container ID).",
            |c| {
                let mut b = c.bundle_ops(&["exit:0"])?;
                let con = console_run(c, &mut b, "\n", None)?;
                let v: Value = serde_json::from_str(&con.request).map_err(|e| {
                    Verdict::Fail(format!("request data is not JSON ({e}): {:?}", con.request))
                })?;
                eq("type", v["type"].as_str(), Some("terminal"))?;
                eq("container", v["container"].as_str(), Some(con.id.as_str()))
            },
        ),
        t(
            "cli.kill-default-term",
            "cli#kill",
            MUST,
            "kill: the signal defaults to TERM; the runtime MUST support TERM and KILL with the POSIX semantics.",
            |c| kill_reports(c, |id| vec!["kill".into(), id.into()], "signal=15"),
        ),
        t(
            "cli.kill-signal-option",
            "cli#kill",
            MUST,
            "kill --signal <SIGNAL>: the signal to send (the document's option form, e.g. `funC kill --signal KILL sleeper-1`).",
            |c| {
                kill_reports(
                    c,
                    |id| vec!["kill".into(), "--signal".into(), "USR1".into(), id.into()],
                    "signal=10",
                )
            },
        ),
        t(
            "cli.state-stdout-json",
            "cli#state",
            MUST,
            "state: stdout: the runtime MUST print the state JSON to its stdout; exit code zero if the state was successfully written.",
            |c| {
                let (_b, id) = c.created()?;
                let o = c.rt(&["state", &id]);
                ensure(o.ok(), format!("state: {}", o.brief()))?;
                let v: Value = serde_json::from_str(&o.stdout)
                    .map_err(|e| Verdict::Fail(format!("stdout is not JSON: {e}")))?;
                eq("id", v["id"].as_str(), Some(id.as_str()))
            },
        ),
        t(
            "cli.utf8-state",
            "cli#character-encodings",
            SHOULD,
            "A runtime in an en_US.UTF-8 locale SHOULD write its state to stdout in UTF-8 (annotations with non-ASCII text survive).",
            |c| {
                let mut b = c.bundle_ops(&["sleep:30"])?;
                b.set("annotations", json!({"k": "gr\u{fc}\u{df}e \u{1F600}"}));
                let id = c.id();
                c.must_create(&b, &id)?;
                let s = c.state(&id)?;
                eq(
                    "annotation",
                    s["annotations"]["k"].as_str(),
                    Some("gr\u{fc}\u{df}e \u{1F600}"),
                )
            },
        ),
    ]
}

/// Used by config.md's consoleSize test: the checker's report over the console.
pub fn console_kv(c: &mut Ctx, setup: fn(&mut crate::bundle::Bundle)) -> Result<Kv, Verdict> {
    let mut b = c.bundle_ops(&[
        "tty",
        "stat:/dev/console",
        "readlink:/proc/self/fd/0",
        "exit:0",
    ])?;
    setup(&mut b);
    Ok(console_run(c, &mut b, "readlink./proc/self/fd/0=", None)?.kv)
}

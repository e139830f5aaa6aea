//! A small container engine that embeds capsa in a multi-threaded program.
//!
//! It runs several containers at once from one rootfs, each from a Spec
//! built from capsa's default one, with its stdout and stderr piped back;
//! one thread per container streams its output line by line, another
//! waits for its exit; at the end every container is deleted and the
//! engine's state root removed.
//!
//! ```sh
//! cargo build --example engine
//! sudo target/x86_64-unknown-linux-gnu/debug/examples/engine /path/to/busybox/rootfs 3
//! ```
//!
//! Each container has a thread of its own that creates, starts, waits for
//! and deletes it while the others run: from a program with more than one
//! thread capsa creates through a single-threaded helper process (a clone
//! of a threaded process could deadlock on a lock another thread held), so
//! this is safe; the init is still this process's child.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::thread;

use capsa::{Container, CreateOptions, ExitStatus, Runtime, Stdio};

/// The Spec for container number `n`: capsa's default (what `capsa spec`
/// writes), running a short script, in a cgroup of its own.
fn spec_for(n: usize) -> capsa::Result<capsa::oci_spec::runtime::Spec> {
    let mut spec = capsa::default_spec(false, 0, 0)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_terminal(Some(false));
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        format!(
            "for i in 1 2 3; do echo \"hello $i from container {n}\"; sleep 0.1; done; \
             echo \"container {n} says goodbye\" >&2; exit {n}"
        ),
    ]));
    spec.set_process(Some(process));
    spec.set_hostname(Some(format!("engine-{n}")));
    Ok(spec)
}

/// Stream `pipe` line by line to our stdout, prefixed with the container's
/// id and the stream's name.
fn stream(id: String, what: &'static str, pipe: Option<std::fs::File>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            println!("[{id} {what}] {line}");
        }
    })
}

fn main() {
    // First thing: capsa execs every workload through this executable.
    capsa::run_if_asked();
    let mut args = std::env::args().skip(1);
    let Some(rootfs) = args.next().map(PathBuf::from) else {
        eprintln!("usage: engine ROOTFS [COUNT]");
        std::process::exit(2);
    };
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let root = std::env::temp_dir().join(format!("capsa-engine-{}", std::process::id()));
    let rt = Runtime::new(&root);
    println!("engine: state root {}", root.display());
    let code = match run(&rt, &rootfs, count) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("engine: {e}");
            1
        }
    };
    // Whatever happened: nothing of ours stays.
    if let Ok(list) = rt.list() {
        for c in list {
            let _ = rt.delete(&c.id, true);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    std::process::exit(code);
}

fn run(rt: &Runtime, rootfs: &std::path::Path, count: usize) -> capsa::Result<()> {
    // One thread per container creates it, streams its output (two more
    // threads), starts it and waits for its exit, while the others do the
    // same: capsa's create and exec are safe from a threaded program.
    let results: Vec<(String, capsa::Result<ExitStatus>)> = thread::scope(|scope| {
        let runs: Vec<_> = (0..count)
            .map(|n| scope.spawn(move || (format!("c{n}"), run_one(rt, rootfs, n))))
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| ("?".into(), Ok(ExitStatus::Unknown)))
            })
            .collect()
    });
    let mut failed = 0;
    let mut first_error = None;
    for (id, status) in results {
        match status {
            Ok(ExitStatus::Exited(code)) => println!("engine: {id} exited with status {code}"),
            Ok(ExitStatus::Signaled(sig)) => println!("engine: {id} was killed by signal {sig}"),
            Ok(other) => {
                println!("engine: {id} ended: {other:?}");
                failed += 1;
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    println!("engine: {count} containers done, {failed} lost, all deleted");
    Ok(())
}

/// Container number `n`, start to end: create with piped output, stream it,
/// start, wait (the init is this process's child: its pidfd says when it
/// ends), delete.
fn run_one(rt: &Runtime, rootfs: &std::path::Path, n: usize) -> capsa::Result<ExitStatus> {
    let id = format!("c{n}");
    let mut opts = CreateOptions::with_spec(spec_for(n)?, rootfs);
    opts.stdin = Stdio::Null;
    opts.stdout = Stdio::Piped;
    opts.stderr = Stdio::Piped;
    let mut c: Container = rt.create(&id, &opts)?;
    let out = stream(id.clone(), "out", c.take_stdout());
    let err = stream(id.clone(), "err", c.take_stderr());
    c.start()?;
    let status = c.wait()?;
    // Every writer has exited: the streams end.
    let _ = out.join();
    let _ = err.join();
    rt.delete(&id, false)?;
    Ok(status)
}

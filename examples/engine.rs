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
//! The containers are all created before the engine starts any other
//! thread; then threads read their pipes and wait on their pidfds while the
//! main thread collects the results and deletes them. (Creating and
//! exec'ing while other threads run needs capsa's fork-safe create path,
//! issue 14: a clone while another thread holds the allocator's lock can
//! deadlock the child.)

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
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
    let mut containers: Vec<Container> = Vec::new();
    for n in 0..count {
        let id = format!("c{n}");
        let mut opts = CreateOptions::with_spec(spec_for(n)?, rootfs);
        opts.stdin = Stdio::Null;
        opts.stdout = Stdio::Piped;
        opts.stderr = Stdio::Piped;
        containers.push(rt.create(&id, &opts)?);
    }
    println!("engine: created {count} containers");
    // Now the threads: two streams per container.
    let mut streams = Vec::new();
    for c in &mut containers {
        let id = c.id().to_string();
        streams.push(stream(id.clone(), "out", c.take_stdout()));
        streams.push(stream(id, "err", c.take_stderr()));
    }
    let containers: Vec<Arc<Container>> = containers.into_iter().map(Arc::new).collect();
    for c in &containers {
        c.start()?;
    }
    // One waiting thread per container: each reaps its own init (they are
    // children of this process) through the init's pidfd.
    let waiters: Vec<_> = containers
        .iter()
        .map(|c| {
            let c = Arc::clone(c);
            thread::spawn(move || (c.id().to_string(), c.wait()))
        })
        .collect();
    let mut failed = 0;
    for w in waiters {
        let (id, status) = w
            .join()
            .unwrap_or_else(|_| ("?".into(), Ok(ExitStatus::Unknown)));
        match status? {
            ExitStatus::Exited(code) => println!("engine: {id} exited with status {code}"),
            ExitStatus::Signaled(sig) => println!("engine: {id} was killed by signal {sig}"),
            other => {
                println!("engine: {id} ended: {other:?}");
                failed += 1;
            }
        }
    }
    // Every writer has exited: the streams end.
    for s in streams {
        let _ = s.join();
    }
    for c in containers {
        rt.delete(c.id(), false)?;
    }
    println!("engine: {count} containers done, {failed} lost, all deleted");
    Ok(())
}

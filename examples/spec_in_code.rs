//! Run one container from a runtime-spec `Spec` built entirely in code:
//! no bundle directory and no config.json, only a root filesystem.
//!
//! ```sh
//! cargo build --example spec_in_code
//! sudo target/x86_64-unknown-linux-gnu/debug/examples/spec_in_code /path/to/busybox/rootfs
//! ```

use std::io::Read;

use capsa::oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use capsa::{CreateOptions, Runtime, Stdio};

/// A minimal container: its own pid, mount, uts, ipc and network
/// namespaces, /proc, a read-only root, and a shell script as its process.
fn build_spec() -> Result<Spec, capsa::oci_spec::OciSpecError> {
    let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    SpecBuilder::default()
        .version("1.0.2")
        .hostname("built-in-code")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()?,
        )
        .process(
            ProcessBuilder::default()
                .terminal(false)
                .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
                .args(vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    "echo hello from a spec built in code; echo hostname=$(hostname); \
                     echo pid=$$; echo ${GREETING}"
                        .to_string(),
                ])
                .env(vec![
                    "PATH=/bin:/sbin:/usr/bin".to_string(),
                    "GREETING=bye".to_string(),
                ])
                .cwd("/")
                .build()?,
        )
        .mounts(vec![
            MountBuilder::default()
                .destination("/proc")
                .typ("proc")
                .source("proc")
                .build()?,
        ])
        .linux(
            LinuxBuilder::default()
                .namespaces(vec![
                    ns(LinuxNamespaceType::Pid)?,
                    ns(LinuxNamespaceType::Mount)?,
                    ns(LinuxNamespaceType::Uts)?,
                    ns(LinuxNamespaceType::Ipc)?,
                    ns(LinuxNamespaceType::Network)?,
                ])
                .build()?,
        )
        .build()
}

fn main() {
    // First thing: capsa execs the workload through this executable.
    capsa::run_if_asked();
    let Some(rootfs) = std::env::args().nth(1) else {
        eprintln!("usage: spec_in_code ROOTFS");
        std::process::exit(2);
    };
    let root = std::env::temp_dir().join(format!("capsa-spec-example-{}", std::process::id()));
    let rt = Runtime::new(&root);
    let id = format!("spec-in-code-{}", std::process::id());
    let result = run(&rt, &id, &rootfs);
    let _ = rt.delete(&id, true);
    let _ = std::fs::remove_dir_all(&root);
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("spec_in_code: {e}");
            std::process::exit(1);
        }
    }
}

fn run(rt: &Runtime, id: &str, rootfs: &str) -> Result<i32, Box<dyn std::error::Error>> {
    let spec = build_spec()?;
    // The rootfs given here replaces the spec's root.path.
    let mut opts = CreateOptions::with_spec(spec, rootfs);
    opts.stdout = Stdio::Piped;
    let mut c = rt.create(id, &opts)?;
    let mut out = c.take_stdout().ok_or("no stdout pipe")?;
    c.start()?;
    let mut text = String::new();
    out.read_to_string(&mut text)?;
    print!("{text}");
    let status = c.wait()?;
    println!("exit status: {:?}", status);
    c.delete(false)?;
    Ok(status.code().unwrap_or(1))
}

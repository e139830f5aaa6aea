//! The examples (examples/*.rs) build and run against a busybox rootfs, and
//! print what they promise. They are built here with `cargo build
//! --examples` (the cargo that runs this test), whose JSON messages name
//! the executables.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{TempDir, build_rootfs, run_cmd, skip_unless_capsa};

/// Each example runs a few short containers.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Build the examples; their executables by name.
fn build_examples() -> Vec<(String, PathBuf)> {
    let out = Command::new(env!("CARGO"))
        .args(["build", "--examples", "--message-format=json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo build --examples");
    assert!(
        out.status.success(),
        "cargo build --examples: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["target"]["kind"][0] != "example" {
            continue;
        }
        if let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str()) {
            exes.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    exes
}

fn example(name: &str) -> PathBuf {
    build_examples()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no example {name} was built"))
}

#[test]
fn engine_runs_containers_in_parallel_and_cleans_up() {
    if skip_unless_capsa("the examples embed capsa's library") {
        return;
    }
    let tmp = TempDir::new("ex-engine");
    let rootfs = tmp.path().join("rootfs");
    build_rootfs(&rootfs);
    let exe = example("engine");
    let rootfs_arg = rootfs.to_string_lossy().into_owned();
    let out = run_cmd(&exe, &[&rootfs_arg, "3"], tmp.path(), LIMIT, |_| {});
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let root = lines
        .first()
        .and_then(|l| l.strip_prefix("engine: state root "))
        .unwrap_or_else(|| panic!("no state root line: {out:?}"));
    for n in 0..3 {
        for i in 1..=3 {
            let want = format!("[c{n} out] hello {i} from container {n}");
            assert!(lines.contains(&want.as_str()), "{want}: {out:?}");
        }
        let bye = format!("[c{n} err] container {n} says goodbye");
        assert!(lines.contains(&bye.as_str()), "{bye}: {out:?}");
        let exit = format!("engine: c{n} exited with status {n}");
        assert!(lines.contains(&exit.as_str()), "{exit}: {out:?}");
    }
    // Each container's lines in order, whatever the interleaving.
    for n in 0..3 {
        let mine: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("[c{n} out]")))
            .collect();
        assert_eq!(mine.len(), 3, "{out:?}");
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
    }
    assert_eq!(
        lines.last(),
        Some(&"engine: 3 containers done, 0 lost, all deleted"),
        "{out:?}"
    );
    // Its state root is gone, and no process runs in the rootfs.
    assert!(!std::path::Path::new(root).exists(), "{root} left behind");
    assert!(
        common::procs_rooted_at(&rootfs).is_empty(),
        "processes left"
    );
}

#[test]
fn spec_in_code_runs_without_a_bundle() {
    if skip_unless_capsa("the examples embed capsa's library") {
        return;
    }
    let tmp = TempDir::new("ex-spec");
    let rootfs = tmp.path().join("rootfs");
    build_rootfs(&rootfs);
    let exe = example("spec_in_code");
    let rootfs_arg = rootfs.to_string_lossy().into_owned();
    let out = run_cmd(&exe, &[&rootfs_arg], tmp.path(), LIMIT, |_| {});
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "hello from a spec built in code\nhostname=built-in-code\npid=1\nbye\nexit status: Exited(0)\n",
        "{out:?}"
    );
    assert!(!tmp.path().join("config.json").exists());
}

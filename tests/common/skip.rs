//! Counted skips. A test that cannot run here calls `skip(reason)` and returns: the
//! skip is printed and, when `$CAPSA_SKIP_LOG` names a file (scripts/test.sh sets it),
//! appended there as one line `SKIPPED <test binary>::<test name>: <reason>`. libtest
//! itself counts such a test as passed; scripts/test.sh counts the lines per lane,
//! reports them as skipped and compares them with tests/expected-skips.txt.
//!
//! Standalone (no other harness code) so that test files without `mod common`
//! (tests/console*.rs, tests/cgroups_*.rs, tests/seccomp.rs) include just this file:
//! `#[path = "common/skip.rs"] mod skip;`.

#![allow(dead_code)] // each test file uses a different part

use std::cell::RefCell;
use std::io::Write;

thread_local! {
    /// The running test's name, for harnesses that run tests on one thread
    /// (tests/engines/mod.rs); libtest names each test's thread instead.
    static CURRENT_TEST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Name the test running on this thread (for `harness = false` runners).
pub fn set_current_test(name: Option<&str>) {
    CURRENT_TEST.with(|c| *c.borrow_mut() = name.map(str::to_owned));
}

/// The test binary's name without cargo's hash suffix: "process" for
/// target/.../deps/process-0123abcd.
fn binary_name() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    }
}

/// `<binary>::<test>`, the id tests/expected-skips.txt lists. A skip from outside any
/// one test (a whole engine suite) is `<binary>::*`.
pub fn test_id() -> String {
    let test = CURRENT_TEST
        .with(|c| c.borrow().clone())
        .or_else(|| {
            std::thread::current()
                .name()
                .filter(|n| *n != "main")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "*".to_owned());
    format!("{}::{test}", binary_name())
}

/// Report that the calling test cannot run here, and why; the caller returns right
/// after. Never fails the test: an unexpected skip is scripts/test.sh's verdict.
pub fn skip(reason: &str) {
    // One line, no ':' ambiguity in the id (test names use "::" only as path separators).
    let line = format!("SKIPPED {}: {}\n", test_id(), reason.replace('\n', " "));
    eprint!("{line}");
    if let Some(path) = std::env::var_os("CAPSA_SKIP_LOG").filter(|p| !p.is_empty()) {
        // O_APPEND and one write per line: parallel tests do not interleave.
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = res {
            // Losing the record would turn a skip into a silent pass: fail loudly.
            panic!(
                "skip: cannot append to CAPSA_SKIP_LOG {}: {e}",
                std::path::Path::new(&path).display()
            );
        }
    }
}

//! Build-time facts for the binary:
//! - its layout comes from symbol-order.txt through the linker wrapper
//!   (scripts/link-ordered.sh, see there): relink when either changes;
//! - `capsa --version` prints the git commit it was built from, as runc does
//!   (CAPSA_COMMIT: `git rev-parse HEAD` of this checkout, or the
//!   CAPSA_COMMIT environment variable when set, e.g. by a packager building
//!   from a tarball; "unknown" when neither exists).
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=symbol-order.txt");
    println!("cargo::rerun-if-changed=scripts/link-ordered.sh");
    println!("cargo::rerun-if-env-changed=CAPSA_COMMIT");
    let commit = match std::env::var("CAPSA_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo::rustc-env=CAPSA_COMMIT={commit}");
}

/// `git` in the package's directory, trimmed stdout, or None on any failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// HEAD's commit, if this package is the top of a git work tree (a tarball unpacked
/// inside some other repository must not report that repository's commit). Asks cargo
/// to rerun this script when HEAD moves: HEAD itself, the branch it names, packed-refs.
fn git_commit() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let top = PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&dir, &["rev-parse", "HEAD"])?;
    let mut watch = vec![git(&dir, &["rev-parse", "--git-path", "HEAD"])];
    if let Some(r) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&dir, &["rev-parse", "--git-path", &r]));
    }
    watch.push(git(&dir, &["rev-parse", "--git-path", "packed-refs"]));
    for p in watch.into_iter().flatten() {
        let p = dir.join(p);
        // A path that does not exist would make cargo rerun this script on every build.
        if p.exists() {
            println!("cargo::rerun-if-changed={}", p.display());
        }
    }
    Some(commit)
}

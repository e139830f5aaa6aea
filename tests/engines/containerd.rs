//! A private containerd 1.6 for the tests that drive it (tests/engine_containerd.rs
//! and the checkpoint engines check in tests/checkpoint.rs): its own root, state
//! dir, sockets, config.toml and cgroup parent, no host interference; the
//! busybox and pause images imported from a local OCI archive. The CRI plugin
//! has a runtime entry "capsa" whose `BinaryName` is the runtime under test
//! (what a Kubernetes RuntimeClass selects); `ctr run --runc-binary` selects
//! a runtime per container.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Daemon, Scratch, s};
use crate::common::{self, Output};

pub const IMAGE: &str = "capsa.test/busybox:1";
pub const PAUSE: &str = "capsa.test/pause:1";

pub struct Containerd {
    pub scratch: Scratch,
    pub daemon: Daemon,
    pub ctr: PathBuf,
    pub sock: String,
    /// `--runc-root` for ctr's containers (the runtime's --root is this/<namespace>).
    pub runc_root: PathBuf,
    /// The CRI runtime entry's `Root`.
    pub cri_root: PathBuf,
}

impl Containerd {
    /// Start the daemon (scratch dir and cgroup parent tagged `tag`) and
    /// import the images into each of `namespaces`; without `cri` the CRI
    /// plugin is disabled (less to start and run: under TCG it counts).
    pub fn launch(tag: &str, namespaces: &[&str], cri: bool) -> Result<Containerd, String> {
        let scratch = Scratch::new(tag);
        let d = |n: &str| s(&scratch.mkdir(n));
        let sock = s(&scratch.path("containerd.sock"));
        let runc_root = scratch.mkdir("runc-root");
        let cri_root = scratch.mkdir("cri-root");
        let runtime = s(&common::runtime());
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{sock}.debug"
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_port = "0"
  sandbox_image = "{PAUSE}"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host lacks.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  # What a Kubernetes RuntimeClass with handler "capsa" selects.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa.options]
      BinaryName = "{runtime}"
      Root = "{cri_root}"
"#,
            root = d("root"),
            state = d("state"),
            opt = d("opt"),
            cni_bin = d("cni-bin"),
            cni_conf = d("cni-conf"),
            cri_root = s(&cri_root),
            disabled = if cri {
                ""
            } else {
                r#""io.containerd.grpc.v1.cri""#
            },
        );
        let config_path = scratch.write_file("config.toml", &config);
        scratch.mkdir("fifo");
        let containerd = super::which("containerd").ok_or("no containerd")?;
        let ctr = super::which("ctr").ok_or("no ctr")?;
        let mut daemon = Daemon::spawn(
            "containerd",
            &containerd,
            &["--config", &s(&config_path)],
            scratch.path("containerd.log"),
        );
        let ready = daemon.wait_ready(Duration::from_secs(60), || {
            let o = scratch.run(&ctr, &["--address", &sock, "version"], |_| {});
            o.success()
        });
        let c = Containerd {
            scratch,
            daemon,
            ctr,
            sock,
            runc_root,
            cri_root,
        };
        ready?;
        let archive = c.oci_archive();
        for ns in namespaces {
            let o = c.ctr_ns(ns, &["images", "import", &s(&archive)]);
            if !o.success() {
                return Err(format!("ctr images import: {o}"));
            }
        }
        Ok(c)
    }

    pub fn ctr_ns(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["--address", &self.sock, "-n", ns];
        full.extend_from_slice(args);
        self.scratch.run(&self.ctr, &full, |_| {})
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_ns("default", args)
    }

    /// An OCI image layout archive holding the busybox image and a "pause"
    /// image (the CRI sandbox) that sleeps, for `ctr images import`.
    pub fn oci_archive(&self) -> PathBuf {
        let layer = self.scratch.busybox_tar();
        let dir = self.scratch.mkdir("oci");
        let blobs = self.scratch.mkdir("oci/blobs/sha256");
        let put = |data: &[u8]| -> (String, usize) {
            let tmp = self.scratch.path("blob.tmp");
            fs::write(&tmp, data).expect("write blob");
            let digest = sha256(&self.scratch, &tmp);
            fs::rename(&tmp, blobs.join(&digest)).expect("rename blob");
            (digest, data.len())
        };
        let (layer_digest, layer_size) = put(&fs::read(&layer).expect("read layer"));
        let mut manifests = Vec::new();
        for (name, cmd) in [(IMAGE, vec!["sh"]), (PAUSE, vec!["sleep", "1000000"])] {
            let config = serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
                "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
            });
            let (cd, cs) = put(config.to_string().as_bytes());
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": format!("sha256:{cd}"), "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": format!("sha256:{layer_digest}"), "size": layer_size}],
            });
            let (md, ms) = put(manifest.to_string().as_bytes());
            manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{md}"), "size": ms,
                "annotations": {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": "1"},
            }));
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        fs::write(dir.join("index.json"), index.to_string()).expect("write index");
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("write layout");
        let archive = self.scratch.path("images.tar");
        let o = self.scratch.run(
            Path::new("tar"),
            &["-C", &s(&dir), "-cf", &s(&archive), "."],
            |_| {},
        );
        assert!(o.success(), "tar the OCI layout: {o}");
        archive
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for ns in ["default", "k8s.io"] {
            for id in self
                .ctr_ns(ns, &["task", "ls", "-q"])
                .stdout
                .split_whitespace()
            {
                let _ = self.ctr_ns(ns, &["task", "kill", "-s", "SIGKILL", id]);
                let _ = self.ctr_ns(ns, &["task", "delete", "-f", id]);
            }
            for id in self
                .ctr_ns(ns, &["containers", "ls", "-q"])
                .stdout
                .split_whitespace()
            {
                let _ = self.ctr_ns(ns, &["containers", "rm", id]);
            }
        }
        self.daemon.stop(Duration::from_secs(30));
        self.scratch.sweep();
    }
}

fn sha256(scratch: &Scratch, file: &Path) -> String {
    let o = scratch.run(Path::new("sha256sum"), &[&s(file)], |_| {});
    assert!(o.success(), "sha256sum: {o}");
    o.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

//! Command line, mirroring runc's flags and subcommands exactly. Only the
//! binary uses this module; the library API has no clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "capsa",
    about = "An OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version (runc's format: engines parse it).
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Root directory for container state (default /run/capsa; for a
    /// non-root user $XDG_RUNTIME_DIR/capsa).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (errors; debug lines too with --debug).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (cgroupsPath slice:prefix:name).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (`spec --rootless`: a rootless spec).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// criu binary (checkpoint/restore); accepted for runc compatibility.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Cgroup manager: cgroupfs (default), systemd (as --systemd-cgroup), or
    /// disabled (no cgroup is created; podman passes this).
    #[arg(long = "cgroup-manager", global = true, value_enum)]
    pub cgroup_manager: Option<CgroupManager>,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupManager {
    Cgroupfs,
    Systemd,
    Disabled,
}

/// `runc --version`'s shape: "NAME version X", "commit: C", "spec: S" (engines parse the
/// first line). C is the git commit capsa was built from, or "unknown" (see build.rs); S is
/// the newest runtime-spec version capsa implements (`features`' ociVersionMax).
pub fn version_text() -> String {
    format!(
        "capsa version {}\ncommit: {}\nspec: {}",
        env!("CARGO_PKG_VERSION"),
        env!("CAPSA_COMMIT"),
        capsa::OCI_VERSION
    )
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Path to the bundle (defaults to the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// The config file, in place of the bundle's config.json (crun's flag;
    /// relative to the bundle).
    #[arg(short = 'f', long)]
    pub config: Option<PathBuf>,
    /// Write the init's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N-1) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Send a pidfd of the init to this unix socket.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Container id.
    pub id: String,
}

// Each subcommand's arguments are built only when it is the one invoked
// (clap's `defer`): building all of them (checkpoint and restore alone have
// dozens) cost every command ~250 KiB of heap and stack at start-up, which
// a created container's init (a copy of `capsa create`) also kept. A
// deferred Args struct's doc comment would replace its subcommand's about
// text, so those structs carry plain comments.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Cmd {
    /// Create a container (its init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container (stopped) after it exits, for `delete` to remove.
        #[arg(long)]
        keep: bool,
        /// Accepted for runc compatibility: capsa's run does not need a subreaper.
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to the container's init (default SIGTERM).
    Kill {
        /// Send the signal to every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
        /// The signal, as the OCI runtime CLI document spells it (`kill
        /// --signal SIG ID`); runc's positional form is what engines use.
        #[arg(
            short = 's',
            long = "signal",
            value_name = "SIGNAL",
            conflicts_with = "signal"
        )]
        signal_flag: Option<String>,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container.
    Delete {
        /// Kill the container first if it is running.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        // `spec --rootless` is the global --rootless flag (clap cannot
        // have both), read by the spec command.
    },
    /// Print the features this runtime implements (runtime-spec features.md).
    Features,
    /// Run a new process inside a running container.
    Exec(Box<ExecArgs>),
    /// Suspend every process of the container.
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update(Box<UpdateArgs>),
    /// Stream the container's stats and OOM events as JSON lines.
    Events {
        /// Print the stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Stats interval (Go duration, e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// List the container's processes.
    Ps {
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: ListFormat,
        id: String,
        /// Options passed to ps(1) for the table (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Checkpoint a running container with CRIU (see src/checkpoint/).
    Checkpoint(Box<CheckpointArgs>),
    /// Restore a container from a CRIU checkpoint.
    Restore(Box<RestoreArgs>),
    /// Not implemented yet; refused with a clear error.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Path to a runtime-spec process.json ("-" for stdin).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE).
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets.
    #[arg(short = 'c', long)]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile for the process (an error if AppArmor is not enabled).
    #[arg(short = 'a', long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process (an error if SELinux is disabled).
    #[arg(short = 'l', long = "process-label")]
    pub process_label: Option<String>,
    /// Detach from the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Pass N extra fds (3 .. 3+N-1).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in this existing sub-cgroup: PATH, or CTRL[,CTRL]:PATH (cgroup v1).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Send a pidfd of the process to this unix socket.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Container id.
    pub id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

// `update`'s flags, named as runc names them.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// LinuxResources JSON file, or "-" for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "cpu-shares", alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CFS burst, in microseconds (cpu.cfs_burst_us / cpu.max.burst).
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// 1 makes the cgroup SCHED_IDLE; the kernel takes only 0 or 1.
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

// Flags `checkpoint` and `restore` share (runc's names).
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Directory for the CRIU images (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Checkpoint/restore established TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a session leader outside the container).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// Cgroups mode: ignore, soft (default), full or strict.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create this namespace empty instead of saving/restoring its properties.
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate the images of incremental dumps.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Lazy page migration through userfaultfd: checkpoint serves the pages
    /// on --page-server's port until a restore with --lazy-pages (and
    /// `criu lazy-pages`) has fetched them.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// The previous pre-dump, relative to the image path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump the memory only, leave the container running (for a later dump with --parent-path).
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// ADDRESS:PORT of a CRIU page server to send the memory pages to.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// With --lazy-pages: CRIU writes \0 to this fd once lazy-pages is ready (-1: none).
    #[arg(long = "status-fd", allow_negative_numbers = true)]
    pub status_fd: Option<i32>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle (defaults to the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Detach from the restored container.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the restored init's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the restored pty master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (CRIU makes the root).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    pub id: String,
}

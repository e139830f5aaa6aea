//! The `capsa` binary: parse runc's command line, call the library, report
//! an error once (stderr, and the --log file in runc's format), exit. It
//! uses only the library's public API.

mod cli;
mod log;

use std::io::Write;
use std::process::ExitCode;

use capsa::{CgroupManager as Manager, CreateOptions, Error, Runtime};
use clap::Parser;
use cli::{CgroupManager, Cli, Cmd, CreateArgs, ExecArgs, ListFormat, LogFormat};
use log::{Format, Logger};

fn create_options(a: &CreateArgs) -> CreateOptions {
    let mut o = CreateOptions::with_bundle(a.bundle.clone());
    o.pid_file = a.pid_file.clone();
    o.config = a.config.clone();
    o.console_socket = a.console_socket.clone();
    o.no_pivot = a.no_pivot;
    o.no_new_keyring = a.no_new_keyring;
    o.preserve_fds = a.preserve_fds;
    o.listen_fds = listen_fds();
    o.pidfd_socket = a.pidfd_socket.clone();
    o
}

/// `--rootless`: Some(true|false), or None for auto (absent, or "auto").
fn parse_rootless(v: Option<&str>) -> Result<Option<bool>, Error> {
    match v {
        None | Some("auto") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(Error::invalid_argument(format!(
            "--rootless: invalid value {v:?} (true, false or auto)"
        ))),
    }
}

/// runc's socket activation: LISTEN_FDS=N counts when LISTEN_PID is us.
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn exec_options(a: ExecArgs) -> (String, capsa::ExecOptions) {
    let mut o = capsa::ExecOptions::args(a.command);
    o.process = a.process;
    o.tty = a.tty;
    o.console_socket = a.console_socket;
    o.cwd = a.cwd;
    o.env = a.env;
    o.user = a.user;
    o.additional_gids = a.additional_gids;
    o.caps = a.cap;
    o.no_new_privs = a.no_new_privs;
    o.detach = a.detach;
    o.pid_file = a.pid_file;
    o.preserve_fds = a.preserve_fds;
    o.ignore_paused = a.ignore_paused;
    o.apparmor = a.apparmor;
    o.process_label = a.process_label;
    o.cgroup = a.cgroup;
    o.pidfd_socket = a.pidfd_socket;
    (a.id, o)
}

fn run(cli: Cli) -> Result<i32, Error> {
    let Some(cmd) = cli.cmd else {
        if cli.version {
            println!("{}", cli::version_text());
            return Ok(0);
        }
        return Err(Error::invalid_argument(
            "no command given (see capsa --help)",
        ));
    };
    let rootless = parse_rootless(cli.rootless.as_deref())?;
    // spec and features keep no state: no root to find (or make).
    let stateless = matches!(cmd, Cmd::Spec { .. } | Cmd::Features);
    let root = match &cli.root {
        Some(r) => r.clone(),
        None if stateless => capsa::SYSTEM_ROOT.into(),
        None => capsa::default_root()?,
    };
    // --cgroup-manager (podman's) wins over --systemd-cgroup (runc's).
    let manager = match cli.cgroup_manager {
        Some(CgroupManager::Disabled) => Manager::Disabled,
        Some(CgroupManager::Systemd) => Manager::Systemd,
        Some(_) => Manager::Cgroupfs,
        None if cli.systemd_cgroup => Manager::Systemd,
        None => Manager::Cgroupfs,
    };
    let mut rt = Runtime::new(root).with_cgroup_manager(manager);
    // Only create reads it (the cgroup rules): no detection for the others.
    if matches!(cmd, Cmd::Create(_) | Cmd::Run { .. }) {
        rt = rt.with_rootless(rootless.unwrap_or_else(capsa::detect_rootless));
    }
    let out = &mut std::io::stdout().lock();
    match cmd {
        Cmd::Create(a) => rt.create(&a.id, &create_options(&a)).map(|_| 0),
        Cmd::Start { id } => rt.start(&id).map(|_| 0),
        Cmd::Run {
            create,
            detach,
            keep,
            no_subreaper: _,
        } => rt.run(&create.id, &create_options(&create), detach, keep),
        Cmd::Exec(a) => {
            let (id, opts) = exec_options(*a);
            rt.exec(&id, &opts)
        }
        Cmd::State { id } => {
            let s = rt.state(&id)?;
            let text = serde_json::to_string_pretty(&s).map_err(|e| Error::Failed {
                message: format!("encoding state: {e}"),
            })?;
            let _ = writeln!(out, "{text}");
            Ok(0)
        }
        Cmd::Kill {
            all,
            signal_flag,
            id,
            signal,
        } => {
            let sig = capsa::parse_signal(signal_flag.or(signal).as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all).map(|_| 0)
        }
        Cmd::Delete { force, id } => rt.delete(&id, force).map(|_| 0),
        Cmd::List { format, quiet } => {
            let list = rt.list()?;
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            if quiet {
                for st in &list {
                    let _ = writeln!(out, "{}", st.id);
                }
            } else if format == ListFormat::Json {
                // runc's list JSON names the owner as its table does (its
                // `state` leaves the field empty).
                let named: Vec<serde_json::Value> = list
                    .iter()
                    .filter_map(|st| {
                        let mut v = serde_json::to_value(st).ok()?;
                        v["owner"] = owner_name(&rt.root().join(&st.id), &passwd).into();
                        Some(v)
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&named).unwrap_or_else(|_| "[]".into())
                );
            } else {
                let rows: Vec<[String; 6]> = list
                    .iter()
                    .map(|st| {
                        [
                            st.id.clone(),
                            st.pid.to_string(),
                            st.status.as_str().to_string(),
                            st.bundle.display().to_string(),
                            st.created.clone(),
                            owner_name(&rt.root().join(&st.id), &passwd),
                        ]
                    })
                    .collect();
                print_table(
                    out,
                    &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                    &rows,
                );
            }
            Ok(0)
        }
        Cmd::Spec { bundle } => {
            let rootless = cli.rootless.as_deref() == Some("true");
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::invalid_argument(
                    "File config.json exists. Remove it first",
                ));
            }
            let spec = capsa::default_spec_json(
                rootless,
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            );
            let text = serde_json::to_string_pretty(&spec).unwrap_or_default();
            write_atomic(&path, text.as_bytes(), 0o666)?;
            Ok(0)
        }
        Cmd::Features => {
            let text = serde_json::to_string_pretty(&capsa::features()).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            Ok(0)
        }
        Cmd::Pause { id } => rt.pause(&id).map(|_| 0),
        Cmd::Resume { id } => rt.resume(&id).map(|_| 0),
        Cmd::Update(a) => {
            let a = *a;
            let mut flags = capsa::UpdateFlags::default();
            flags.memory = a.memory;
            flags.memory_swap = a.memory_swap;
            flags.memory_reservation = a.memory_reservation;
            flags.kernel_memory = a.kernel_memory;
            flags.kernel_memory_tcp = a.kernel_memory_tcp;
            flags.cpu_shares = a.cpu_shares;
            flags.cpu_quota = a.cpu_quota;
            flags.cpu_period = a.cpu_period;
            flags.cpu_rt_period = a.cpu_rt_period;
            flags.cpu_rt_runtime = a.cpu_rt_runtime;
            flags.cpu_burst = a.cpu_burst;
            flags.cpu_idle = a.cpu_idle;
            flags.cpuset_cpus = a.cpuset_cpus;
            flags.cpuset_mems = a.cpuset_mems;
            flags.pids_limit = a.pids_limit;
            flags.blkio_weight = a.blkio_weight;
            flags.l3_cache_schema = a.l3_cache_schema;
            flags.mem_bw_schema = a.mem_bw_schema;
            rt.update(&a.id, a.resources.as_deref(), &flags).map(|_| 0)
        }
        Cmd::Events {
            stats,
            interval,
            id,
        } => {
            let every = capsa::parse_duration(&interval)
                .map_err(|e| Error::invalid_argument(format!("--interval: {e}")))?;
            for event in rt.events(&id, stats, every)? {
                let line = event?.to_json();
                // A closed reader (engine gone) ends the stream: report it,
                // runc does too.
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .map_err(|e| io_error("write", "stdout", &e))?;
            }
            Ok(0)
        }
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => {
            let text = rt.ps(&id, format == ListFormat::Json, &ps_args)?;
            let _ = write!(out, "{}", text);
            if format == ListFormat::Json {
                let _ = writeln!(out);
            }
            Ok(0)
        }
        Cmd::Checkpoint(a) => {
            let a = *a;
            let mut opts = capsa::CheckpointOptions::default();
            opts.common = criu_options(a.criu, cli.criu.as_deref());
            opts.parent_path = a.parent_path;
            opts.leave_running = a.leave_running;
            opts.pre_dump = a.pre_dump;
            opts.page_server = a.page_server;
            opts.status_fd = a.status_fd.filter(|&fd| fd != -1);
            rt.checkpoint(&a.id, &opts).map(|_| 0)
        }
        Cmd::Restore(a) => {
            let a = *a;
            let mut opts = capsa::RestoreOptions::default();
            opts.common = criu_options(a.criu, cli.criu.as_deref());
            opts.bundle = a.bundle;
            opts.detach = a.detach;
            opts.pid_file = a.pid_file;
            opts.console_socket = a.console_socket;
            opts.no_pivot = a.no_pivot;
            rt.restore(&a.id, &opts)
        }
        Cmd::Other(args) => Err(Error::Unsupported {
            message: format!(
                "the \"{}\" command is not supported by capsa",
                args.first().map(String::as_str).unwrap_or("")
            ),
        }),
    }
}

fn criu_options(a: cli::CriuArgs, criu: Option<&str>) -> capsa::CriuOptions {
    let mut o = capsa::CriuOptions::default();
    o.criu = criu.map(Into::into);
    o.image_path = a.image_path;
    o.work_path = a.work_path;
    o.tcp_established = a.tcp_established;
    o.ext_unix_sk = a.ext_unix_sk;
    o.shell_job = a.shell_job;
    o.file_locks = a.file_locks;
    o.manage_cgroups_mode = a.manage_cgroups_mode;
    o.empty_ns = a.empty_ns;
    o.auto_dedup = a.auto_dedup;
    o.lazy_pages = a.lazy_pages;
    o
}

/// An I/O error as capsa words them: "OP PATH: description" (the errno's
/// text in lower case, without Rust's "(os error N)").
fn io_error(op: &str, path: impl std::fmt::Display, e: &std::io::Error) -> Error {
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    Error::Failed {
        message: format!("{op} {path}: {}", errno.desc().to_lowercase()),
    }
}

/// Write `path` through a temporary file and a rename: a reader never sees
/// half of it.
fn write_atomic(path: &std::path::Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| io_error("open", tmp.display(), &e))?;
    let res = f
        .write_all(data)
        .map_err(|e| io_error("write", tmp.display(), &e));
    drop(f);
    let res = res.and_then(|_| {
        std::fs::rename(&tmp, path).map_err(|e| io_error("rename", path.display(), &e))
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// runc's OWNER column: the user owning the container's state directory.
/// `passwd` is /etc/passwd's text, read once per listing.
fn owner_name(dir: &std::path::Path, passwd: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(dir).map(|m| m.uid()) else {
        return String::new();
    };
    let uid = uid.to_string();
    let name = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[2] == uid).then(|| f[0].to_string())
    });
    name.unwrap_or(uid)
}

/// Columns padded like runc's tabwriter (min width 12, 3 spaces padding).
fn print_table(out: &mut impl Write, header: &[&str; 6], rows: &[[String; 6]]) {
    let mut width = [0usize; 6];
    for (i, h) in header.iter().enumerate() {
        width[i] = h.len();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}", w = (width[i] + 3).max(12)));
            }
        }
        s
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

fn main() -> ExitCode {
    // The container workload's last execve goes through us (CVE-2019-5736
    // defence); in that mode nothing else of capsa runs.
    capsa::run_if_asked();
    // containerd's shim (go-runc) passes `restore -no-subreaper` with one
    // dash, which runc's flag parser takes as the long flag; clap would not.
    let cli = Cli::parse_from(std::env::args_os().map(|a| {
        if a == "-no-subreaper" {
            "--no-subreaper".into()
        } else {
            a
        }
    }));
    // Before we open anything: fds 3..3+N belong to the workload.
    // (create and run also pass on LISTEN_FDS sockets, as runc does.)
    let preserve = match &cli.cmd {
        Some(Cmd::Create(a)) => a.preserve_fds.saturating_add(listen_fds()),
        Some(Cmd::Run { create, .. }) => create.preserve_fds.saturating_add(listen_fds()),
        Some(Cmd::Exec(a)) => a.preserve_fds,
        _ => 0,
    };
    if preserve > 0
        && let Err(e) = capsa::reserve_preserved_fds(preserve)
    {
        eprintln!("capsa: {e}");
        return ExitCode::from(1);
    }
    let format = match cli.log_format {
        LogFormat::Json => Format::Json,
        LogFormat::Text => Format::Text,
    };
    let mut logger = match Logger::new(cli.log.as_deref(), format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("capsa: opening log file: {e}");
            return ExitCode::from(1);
        }
    };
    // runc's exec exits 255 on any error of its own, so that a caller can
    // tell it from the process's exit status (1 is `false`'s).
    let is_exec = matches!(cli.cmd, Some(Cmd::Exec(_)));
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let msg = e.to_string();
            if logger.has_file() {
                logger.error(&msg);
                eprintln!("{msg}");
            } else {
                // runc: without --log, the formatted line goes to stderr.
                eprint!("{}", Logger::line(format, "error", &msg));
            }
            if is_exec {
                return ExitCode::from(255);
            }
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_flag_values() {
        assert_eq!(parse_rootless(None).ok(), Some(None));
        assert_eq!(parse_rootless(Some("auto")).ok(), Some(None));
        assert_eq!(parse_rootless(Some("true")).ok(), Some(Some(true)));
        assert_eq!(parse_rootless(Some("false")).ok(), Some(Some(false)));
        let e = parse_rootless(Some("yes")).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("--rootless: invalid value \"yes\" (true, false or auto)")
        );
    }
}

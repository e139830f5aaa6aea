//! The `capsa` binary: parse runc's command line, call the library, report
//! an error once (stderr, and the --log file in runc's format), exit.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use capsa::log::{Format, Logger};
use capsa::{CreateOptions, Error, Runtime};
use clap::Parser;
use cli::{CgroupManager, Cli, Cmd, CreateArgs, ExecArgs, ListFormat, LogFormat};

fn create_options(a: &CreateArgs) -> Result<CreateOptions, Error> {
    Ok(CreateOptions {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        listen_fds: listen_fds(),
        pidfd_socket: a.pidfd_socket.clone(),
    })
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

fn exec_options(a: ExecArgs) -> Result<(String, capsa::ExecOptions), Error> {
    let opts = capsa::ExecOptions {
        process: a.process,
        args: a.command,
        tty: a.tty,
        console_socket: a.console_socket,
        cwd: a.cwd,
        env: a.env,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        apparmor: a.apparmor,
        process_label: a.process_label,
        cgroup: a.cgroup,
        pidfd_socket: a.pidfd_socket,
    };
    Ok((a.id, opts))
}

fn run(cli: Cli) -> Result<i32, Error> {
    let Some(cmd) = cli.cmd else {
        if cli.version {
            println!("{}", cli::version_text());
            return Ok(0);
        }
        return Err(Error::Usage("no command given (see capsa --help)".into()));
    };
    let rootless = capsa::rootless::parse_flag(cli.rootless.as_deref())?;
    // spec and features keep no state: no root to find (or make).
    let stateless = matches!(cmd, Cmd::Spec { .. } | Cmd::Features);
    let root = match &cli.root {
        Some(r) => r.clone(),
        None if stateless => capsa::rootless::SYSTEM_ROOT.into(),
        None => capsa::rootless::default_root()?,
    };
    let mut rt = Runtime::new(root);
    rt.no_cgroups = cli.cgroup_manager == Some(CgroupManager::Disabled);
    // Only create reads it (the cgroup rules): no detection for the others.
    if matches!(cmd, Cmd::Create(_) | Cmd::Run { .. }) {
        rt.rootless = rootless.unwrap_or_else(capsa::rootless::detect);
    }
    // --cgroup-manager (podman's) wins over --systemd-cgroup (runc's).
    rt.systemd = match cli.cgroup_manager {
        Some(m) => m == CgroupManager::Systemd,
        None => cli.systemd_cgroup,
    };
    let out = &mut std::io::stdout().lock();
    match cmd {
        Cmd::Create(a) => rt.create(&a.id, &create_options(&a)?).map(|_| 0),
        Cmd::Start { id } => rt.start(&id).map(|_| 0),
        Cmd::Run {
            create,
            detach,
            keep,
            no_subreaper: _,
        } => rt.run(&create.id, &create_options(&create)?, detach, keep),
        Cmd::Exec(a) => {
            let (id, opts) = exec_options(*a)?;
            rt.exec(&id, &opts)
        }
        Cmd::State { id } => {
            let s = rt.state(&id)?;
            let _ = writeln!(out, "{s}");
            Ok(0)
        }
        Cmd::Kill {
            all,
            signal_flag,
            id,
            signal,
        } => {
            let sig = capsa::signals::parse(signal_flag.or(signal).as_deref().unwrap_or("SIGTERM"))
                .map_err(Error::Usage)?;
            rt.kill(&id, sig, all).map(|_| 0)
        }
        Cmd::Delete { force, id } => rt.delete(&id, force).map(|_| 0),
        Cmd::List { format, quiet } => {
            let list = rt.list()?;
            if quiet {
                for (st, _) in &list {
                    let _ = writeln!(out, "{}", st.id);
                }
            } else if format == ListFormat::Json {
                let v: Vec<_> = list.iter().map(|(st, status)| st.oci(*status)).collect();
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
                );
            } else {
                let rows: Vec<[String; 6]> = list
                    .iter()
                    .map(|(st, status)| {
                        let o = st.oci(*status);
                        [
                            st.id.clone(),
                            o.pid.to_string(),
                            status.as_str().to_string(),
                            st.bundle.display().to_string(),
                            st.created.clone(),
                            owner_name(&rt.root.join(&st.id)),
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
                return Err(Error::Usage(
                    "File config.json exists. Remove it first".into(),
                ));
            }
            let spec = capsa::spec::default_spec(
                rootless,
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            );
            let text = serde_json::to_string_pretty(&spec).unwrap_or_default();
            capsa::state::write_atomic(&path, text.as_bytes(), 0o666)?;
            Ok(0)
        }
        Cmd::Features => {
            let text =
                serde_json::to_string_pretty(&capsa::features::features()).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            Ok(0)
        }
        Cmd::Pause { id } => rt.pause(&id).map(|_| 0),
        Cmd::Resume { id } => rt.resume(&id).map(|_| 0),
        Cmd::Update(a) => {
            let a = *a;
            let flags = capsa::runtime::UpdateFlags {
                memory: a.memory,
                memory_swap: a.memory_swap,
                memory_reservation: a.memory_reservation,
                kernel_memory: a.kernel_memory,
                kernel_memory_tcp: a.kernel_memory_tcp,
                cpu_shares: a.cpu_shares,
                cpu_quota: a.cpu_quota,
                cpu_period: a.cpu_period,
                cpu_rt_period: a.cpu_rt_period,
                cpu_rt_runtime: a.cpu_rt_runtime,
                cpuset_cpus: a.cpuset_cpus,
                cpuset_mems: a.cpuset_mems,
                pids_limit: a.pids_limit,
                blkio_weight: a.blkio_weight,
                l3_cache_schema: a.l3_cache_schema,
                mem_bw_schema: a.mem_bw_schema,
            };
            rt.update(&a.id, a.resources.as_deref(), &flags).map(|_| 0)
        }
        Cmd::Events {
            stats,
            interval,
            id,
        } => {
            let every = capsa::runtime::parse_interval(&interval)
                .map_err(|e| Error::Usage(format!("--interval: {e}")))?;
            rt.events(&id, stats, every, out).map(|_| 0)
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
            let opts = capsa::checkpoint::CheckpointOptions {
                common: criu_options(a.criu, cli.criu.as_deref()),
                parent_path: a.parent_path,
                leave_running: a.leave_running,
                pre_dump: a.pre_dump,
                page_server: a.page_server,
                status_fd: a.status_fd.filter(|&fd| fd != -1),
            };
            rt.checkpoint(&a.id, &opts).map(|_| 0)
        }
        Cmd::Restore(a) => {
            let a = *a;
            let opts = capsa::checkpoint::RestoreOptions {
                common: criu_options(a.criu, cli.criu.as_deref()),
                bundle: a.bundle,
                detach: a.detach,
                pid_file: a.pid_file,
                console_socket: a.console_socket,
                no_pivot: a.no_pivot,
            };
            rt.restore(&a.id, &opts)
        }
        Cmd::Other(args) => Err(Error::Unsupported(format!(
            "the \"{}\" command",
            args.first().map(String::as_str).unwrap_or("")
        ))),
    }
}

fn criu_options(a: cli::CriuArgs, criu: Option<&str>) -> capsa::checkpoint::CriuOptions {
    capsa::checkpoint::CriuOptions {
        criu: criu.map(Into::into),
        image_path: a.image_path,
        work_path: a.work_path,
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a.manage_cgroups_mode,
        empty_ns: a.empty_ns,
        auto_dedup: a.auto_dedup,
        lazy_pages: a.lazy_pages,
    }
}

/// runc's OWNER column: the user owning the container's state directory.
fn owner_name(dir: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(dir).map(|m| m.uid()) else {
        return String::new();
    };
    capsa::sys::passwd_entry(uid)
        .map(|(name, _)| name)
        .unwrap_or_else(|| uid.to_string())
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
    capsa::process::trampoline::run_if_asked();
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
    if preserve > 0 {
        let end = 3i32.saturating_add(i32::try_from(preserve).unwrap_or(i32::MAX));
        if let Err(e) = capsa::sys::fill_fd_holes(3, end) {
            eprintln!("capsa: --preserve-fds: {e}");
            return ExitCode::from(1);
        }
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
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
    }
}

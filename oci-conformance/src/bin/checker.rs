//! The probe that runs inside a conformance container (and as a hook on the host).
//!
//! Built static so it runs in a busybox rootfs with no libraries. It takes a list of
//! operations as arguments and prints one `key=value` line per observation; the driver
//! parses those lines. Values never contain a newline (they are escaped as `\n`), and a
//! failed observation prints `key=err:ERRNO` so that the driver can tell "absent" from
//! "denied". It never panics on kernel answers: every probe reports what it saw.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn esc(s: &str) -> String {
    s.trim_end_matches('\n').replace('\n', "\\n")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn io_err(e: &std::io::Error) -> String {
    format!("err:{}", e.raw_os_error().unwrap_or(0))
}

fn out(key: &str, val: &str) {
    let mut o = std::io::stdout().lock();
    // A closed stdout is itself an observation the driver sees as missing output.
    let _ = writeln!(o, "{key}={}", esc(val));
    let _ = o.flush();
}

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

fn uname() -> libc::utsname {
    // SAFETY: utsname is plain old data; zeroed is a valid value and uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    unsafe { libc::uname(&mut u) };
    u
}

fn field(f: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn rlimit_id(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        _ => return None,
    })
}

fn stat_line(path: &str, follow: bool) -> String {
    let md = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match md {
        Err(e) => io_err(&e),
        Ok(m) => {
            let ft = m.file_type();
            let t = if ft.is_dir() {
                "d"
            } else if ft.is_symlink() {
                "l"
            } else if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else if ft.is_fifo() {
                "p"
            } else if ft.is_socket() {
                "s"
            } else {
                "f"
            };
            let rdev = m.rdev();
            format!(
                "{t} {:o} {} {} {} {}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                libc::major(rdev),
                libc::minor(rdev)
            )
        }
    }
}

fn try_open(path: &str, write: bool) -> String {
    let r = fs::OpenOptions::new().read(!write).write(write).open(path);
    match r {
        Ok(_) => "ok".into(),
        Err(e) => io_err(&e),
    }
}

/// Hook mode: the runtime passes the state on stdin; record it with where we ran.
fn hook(name: &str, log: &str, exit: i32) {
    let mut state = String::new();
    let _ = std::io::stdin().read_to_string(&mut state);
    let mnt = fs::read_link("/proc/self/ns/mnt")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let argv: Vec<String> = std::env::args().collect();
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let line = format!(
        "{name}\tmnt={mnt}\targv={}\tenv={}\tstate={}\n",
        argv.join(" "),
        env.join(" "),
        esc(&state)
    );
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = f.write_all(line.as_bytes());
    }
    std::process::exit(exit);
}

fn mountinfo() {
    let Ok(s) = fs::read_to_string("/proc/self/mountinfo") else {
        out("mountinfo", "err");
        return;
    };
    for l in s.lines() {
        // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let (left, right) = l.split_once(" - ").unwrap_or((l, ""));
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        if lf.len() < 6 {
            continue;
        }
        let prop = lf[6..].join(",");
        out(
            &format!("mount.{}", lf[4]),
            &format!(
                "{} opts={} super={} prop={} root={} src={}",
                rf.first().unwrap_or(&""),
                lf[5],
                rf.get(2).unwrap_or(&""),
                if prop.is_empty() { "private" } else { &prop },
                lf[3],
                rf.get(1).unwrap_or(&""),
            ),
        );
    }
}

fn run_op(op: &str) {
    let (name, arg) = op.split_once(':').unwrap_or((op, ""));
    match name {
        "ids" => {
            // SAFETY: these getters cannot fail.
            let (u, eu, g, eg) = unsafe {
                (
                    libc::getuid(),
                    libc::geteuid(),
                    libc::getgid(),
                    libc::getegid(),
                )
            };
            out("uid", &u.to_string());
            out("euid", &eu.to_string());
            out("gid", &g.to_string());
            out("egid", &eg.to_string());
            let mut gs = vec![0 as libc::gid_t; 256];
            // SAFETY: gs has room for 256 entries, which is the size passed.
            let n = unsafe { libc::getgroups(256, gs.as_mut_ptr()) };
            let list: Vec<String> = gs
                .iter()
                .take(n.max(0) as usize)
                .map(|g| g.to_string())
                .collect();
            out("groups", &list.join(","));
        }
        "status" => {
            let s = fs::read_to_string("/proc/self/status").unwrap_or_default();
            for l in s.lines() {
                if let Some((k, v)) = l.split_once(':') {
                    out(&format!("status.{k}"), v.trim());
                }
            }
        }
        "ns" => {
            for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
                let v = fs::read_link(format!("/proc/self/ns/{n}"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| io_err(&e));
                out(&format!("ns.{n}"), &v);
            }
        }
        "cat" => out(
            &format!("cat.{arg}"),
            &fs::read_to_string(arg).unwrap_or_else(|e| io_err(&e)),
        ),
        "stat" => out(&format!("stat.{arg}"), &stat_line(arg, true)),
        "lstat" => out(&format!("lstat.{arg}"), &stat_line(arg, false)),
        "readlink" => out(
            &format!("readlink.{arg}"),
            &fs::read_link(arg)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| io_err(&e)),
        ),
        "ls" => {
            let v = match fs::read_dir(arg) {
                Ok(rd) => {
                    let mut names: Vec<String> = rd
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    names.join(",")
                }
                Err(e) => io_err(&e),
            };
            out(&format!("ls.{arg}"), &v);
        }
        "read" => out(&format!("read.{arg}"), &try_open(arg, false)),
        "write" => {
            let v = match fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(arg)
            {
                Ok(mut f) => match f.write_all(b"x") {
                    Ok(()) => "ok".into(),
                    Err(e) => io_err(&e),
                },
                Err(e) => io_err(&e),
            };
            out(&format!("write.{arg}"), &v);
        }
        "openw" => out(&format!("openw.{arg}"), &try_open(arg, true)),
        "mkdir" => {
            let c = cstr(arg);
            // SAFETY: c is a valid NUL-terminated path.
            let r = unsafe { libc::mkdir(c.as_ptr(), 0o755) };
            out(
                &format!("mkdir.{arg}"),
                &if r == 0 {
                    "ok".into()
                } else {
                    format!("err:{}", errno())
                },
            );
        }
        "append" => {
            let (path, text) = arg.split_once(':').unwrap_or((arg, "main"));
            if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = f.write_all(format!("{text}\n").as_bytes());
            }
        }
        "uts" => {
            let u = uname();
            out("hostname", &field(&u.nodename));
            out("domainname", &field(&u.domainname));
            out("machine", &field(&u.machine));
        }
        "cwd" => out(
            "cwd",
            &std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| io_err(&e)),
        ),
        "env" => {
            for (k, v) in std::env::vars() {
                out(&format!("env.{k}"), &v);
            }
        }
        "args" => out("args", &std::env::args().collect::<Vec<_>>().join(" ")),
        "rlimit" => {
            let v = match rlimit_id(arg) {
                None => "unknown".into(),
                Some(r) => {
                    let mut l = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    // SAFETY: l is a valid, writable rlimit.
                    if unsafe { libc::getrlimit(r, &mut l) } == 0 {
                        format!("{} {}", l.rlim_cur, l.rlim_max)
                    } else {
                        format!("err:{}", errno())
                    }
                }
            };
            out(&format!("rlimit.{arg}"), &v);
        }
        "umask" => {
            // SAFETY: umask cannot fail; we put the value back at once.
            let m = unsafe { libc::umask(0o22) };
            // SAFETY: as above.
            unsafe { libc::umask(m) };
            out("umask", &format!("{m:04o}"));
        }
        "personality" => {
            // SAFETY: 0xffffffff only queries the persona.
            let p = unsafe { libc::personality(0xffff_ffff) };
            out("personality", &format!("{:#x}", p));
        }
        "tty" => {
            for fd in 0..3 {
                // SAFETY: isatty on any integer is safe.
                let t = unsafe { libc::isatty(fd) };
                out(&format!("tty.{fd}"), &t.to_string());
            }
            let mut ws = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes a winsize into ws.
            let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
            out(
                "winsize",
                &if r == 0 {
                    format!("{} {}", ws.ws_row, ws.ws_col)
                } else {
                    format!("err:{}", errno())
                },
            );
        }
        "fds" => {
            let v = match fs::read_dir("/proc/self/fd") {
                Ok(rd) => {
                    let mut fds: Vec<i32> = rd
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                        .collect();
                    fds.sort();
                    fds.iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }
                Err(e) => io_err(&e),
            };
            out("fds", &v);
        }
        "pid" => {
            out("pid", &std::process::id().to_string());
            // SAFETY: getppid/getsid cannot fail for the caller.
            let (pp, sid, pg) = unsafe { (libc::getppid(), libc::getsid(0), libc::getpgrp()) };
            out("ppid", &pp.to_string());
            out("sid", &sid.to_string());
            out("pgrp", &pg.to_string());
        }
        "mountinfo" => mountinfo(),
        "statfs" => {
            let c = cstr(arg);
            // SAFETY: statvfs is plain old data; zeroed is valid and statvfs fills it.
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: c is a valid path, s a writable statvfs.
            let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
            out(
                &format!("statfs.{arg}"),
                &if r == 0 {
                    format!("{:#x}", s.f_flag)
                } else {
                    format!("err:{}", errno())
                },
            );
        }
        "mempolicy" => {
            let mut mode: libc::c_int = -1;
            let mut mask: [libc::c_ulong; 16] = [0; 16];
            // SAFETY: get_mempolicy writes the mode and at most maxnode bits into mask.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_get_mempolicy,
                    &mut mode as *mut libc::c_int,
                    mask.as_mut_ptr(),
                    (16 * 64) as libc::c_ulong,
                    0usize,
                    0usize,
                )
            };
            out(
                "mempolicy",
                &if r == 0 {
                    format!("{mode} {:#x}", mask[0])
                } else {
                    format!("err:{}", errno())
                },
            );
        }
        "ioprio" => {
            // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, 0) only reads our own priority.
            let r = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
            out(
                "ioprio",
                &if r >= 0 {
                    r.to_string()
                } else {
                    format!("err:{}", errno())
                },
            );
        }
        "getprio" => {
            let which: libc::c_int = arg.parse().unwrap_or(0);
            // SAFETY: errno is thread-local; reset so that -1 (a valid nice) can be told apart.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: getpriority only reads scheduling data of the caller's process or group.
            let r = unsafe { libc::getpriority(which as libc::__priority_which_t, 0) };
            let e = errno();
            out(
                &format!("getprio.{arg}"),
                &if r == -1 && e != 0 {
                    format!("err:{e}")
                } else {
                    format!("ok:{r}")
                },
            );
        }
        "sched" => {
            // SAFETY: queries about ourselves only.
            let (pol, nice) = unsafe {
                (
                    libc::sched_getscheduler(0),
                    libc::getpriority(libc::PRIO_PROCESS, 0),
                )
            };
            out("sched", &format!("{pol} {nice}"));
        }
        "affinity" => {
            // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills it.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: set is a valid, writable cpu_set_t of the size passed.
            let r = unsafe {
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
            };
            let mut mask = 0u64;
            for i in 0..64 {
                // SAFETY: i is within the set's bounds.
                if unsafe { libc::CPU_ISSET(i, &set) } {
                    mask |= 1 << i;
                }
            }
            out(
                "affinity",
                &if r == 0 {
                    format!("{mask:#x}")
                } else {
                    format!("err:{}", errno())
                },
            );
        }
        "clocks" => {
            for (n, id) in [
                ("monotonic", libc::CLOCK_MONOTONIC),
                ("boottime", libc::CLOCK_BOOTTIME),
            ] {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: ts is a valid, writable timespec.
                unsafe { libc::clock_gettime(id, &mut ts) };
                out(&format!("clock.{n}"), &ts.tv_sec.to_string());
            }
        }
        "sleep" => std::thread::sleep(std::time::Duration::from_millis(
            arg.parse::<u64>().unwrap_or(1) * 1000,
        )),
        "exit" => std::process::exit(arg.parse().unwrap_or(0)),
        "hook" => {
            let mut p = arg.splitn(3, ':');
            let n = p.next().unwrap_or("hook");
            let log = p.next().unwrap_or("/dev/null");
            let code = p.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            hook(n, log, code);
        }
        "waitfile" => {
            for _ in 0..2000 {
                if fs::metadata(arg).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        "trapterm" => {
            // Block TERM and wait for it synchronously: proves delivery without a handler race.
            // SAFETY: sigset operations on a local, zero-initialised set.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                out("ready", "1");
                let mut sig: libc::c_int = 0;
                libc::sigwait(&set, &mut sig);
                out("signal", &sig.to_string());
            }
        }
        "sysctl" => {
            let p = format!("/proc/sys/{}", arg.replace('.', "/"));
            out(
                &format!("sysctl.{arg}"),
                &fs::read_to_string(p).unwrap_or_else(|e| io_err(&e)),
            );
        }
        "readstdin" => {
            let mut s = String::new();
            let v = match std::io::stdin().read_to_string(&mut s) {
                Ok(_) => s,
                Err(e) => io_err(&e),
            };
            out("stdin", &v);
        }
        "stderr" => {
            let _ = writeln!(std::io::stderr(), "{arg}");
        }
        "kill1" => {
            // Signal pid 1 of our pid namespace: shows whether we are init there.
            out("self_is_init", &(std::process::id() == 1).to_string());
        }
        _ => out("unknown_op", op),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for a in &args {
        run_op(a);
    }
}

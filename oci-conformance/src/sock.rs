//! Unix-socket peers the runtime talks to: the console socket (`--console-socket`) and the
//! seccomp agent (`listenerPath`). Both receive one message carrying a file descriptor.

use crate::bundle::{Bundle, Kv, trunc};
use crate::harness::{Ctx, Verdict, ensure, fail, io};
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Receive one message with an SCM_RIGHTS fd on a connected unix socket.
pub fn recv_fd(sock: &UnixStream) -> Result<(String, OwnedFd), Verdict> {
    let mut data = [0u8; 4096];
    let mut cbuf = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is valid and we point it at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: msg points at buffers that outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return fail(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: msg was filled by recvmsg; CMSG_* walk only inside msg_control.
    let fd = unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        if cm.is_null()
            || (*cm).cmsg_level != libc::SOL_SOCKET
            || (*cm).cmsg_type != libc::SCM_RIGHTS
        {
            return fail("the message carried no SCM_RIGHTS file descriptor");
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(cm) as *const i32)
    };
    // SAFETY: the kernel just installed fd in our table; we own it now.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((
        String::from_utf8_lossy(&data[..n as usize]).into_owned(),
        owned,
    ))
}

/// Wait for a connection on `l` for up to `secs`.
pub fn accept_timeout(l: &UnixListener, secs: u64) -> Result<UnixStream, Verdict> {
    io(l.set_nonblocking(true), "listener nonblocking")?;
    let t0 = Instant::now();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                return Ok(s);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && t0.elapsed() < Duration::from_secs(secs) =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return fail(format!("no connection on the socket: {e}")),
        }
    }
}

/// What a terminal container showed: the console-socket message and the checker's report
/// read from the pseudoterminal master.
pub struct Console {
    pub id: String,
    pub request: String,
    pub kv: Kv,
}

/// Create `b` (terminal: true) with `--console-socket` (and `stdin` as the runtime's stdin),
/// receive the master, start the container and read its report from the master until it
/// printed the line with `until` or stopped.
pub fn console_run(
    c: &mut Ctx,
    b: &mut Bundle,
    until: &str,
    stdin: Option<fs::File>,
) -> Result<Console, Verdict> {
    b.set("process.terminal", serde_json::json!(true));
    b.write()?;
    let sock = c.dir.join("console.sock");
    let l = io(UnixListener::bind(&sock), "bind the console socket")?;
    // Rootless mode: the runtime connects as the user (connect needs write permission).
    c.env.give(&sock);
    let id = c.id();
    let mut cmd = std::process::Command::new(&c.env.rt);
    c.env.as_user(&mut cmd);
    cmd.arg("--root")
        .arg(&c.env.root)
        .args(["create", "--bundle", b.path(), "--console-socket"])
        .arg(&sock)
        .arg(&id)
        .stdin(stdin.map_or_else(std::process::Stdio::null, std::process::Stdio::from))
        .stdout(io(fs::File::create(b.dir.join("stdout")), "stdout file")?)
        .stderr(io(fs::File::create(b.dir.join("stderr")), "stderr file")?);
    let mut ch = io(cmd.spawn(), "spawn create")?;
    let conn = match accept_timeout(&l, 15) {
        Ok(s) => s,
        Err(e) => {
            let _ = ch.kill();
            let _ = ch.wait();
            return Err(e);
        }
    };
    let (request, master) = recv_fd(&conn)?;
    let st = io(ch.wait(), "wait for create")?;
    ensure(
        st.success(),
        format!("create failed: {}", trunc(&b.stderr(), 300)),
    )?;
    c.must_start(&id)?;
    let mut f = fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    // Read until EIO (all replica ends closed), the marker, or a 10 s limit.
    while t0.elapsed() < Duration::from_secs(10) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if text.find(until).is_some_and(|i| text[i..].contains('\n')) {
            break;
        }
    }
    Ok(Console {
        id,
        request,
        kv: Kv::parse(&String::from_utf8_lossy(&out).replace('\r', "")),
    })
}

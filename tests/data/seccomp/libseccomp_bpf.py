#!/usr/bin/python3
"""Compile linux.seccomp profiles with Debian's libseccomp, the way runc does.

Reads a JSON array of profiles (config.json's linux.seccomp objects) on
stdin and prints one JSON line per profile: {"bpf": [[code, jt, jf, k],
...], "pfc": "...", "max": {"x86_64": n, "x32": n, "x86": n}, "unknown":
[names]} or {"error": "..."}. "pfc": libseccomp's pseudo filter code, printed
from its rule tree (not from the BPF). "unknown": names libseccomp cannot
resolve natively.
"max" is the largest number a listed architecture's syscall names resolve
to, which runc's -ENOSYS stub (patchbpf) starts above.

runc's translation (libcontainer/seccomp/seccomp_linux.go), mirrored: names
resolved on the native architecture (unknown ones skipped), rules whose
action equals the default skipped, comparisons of one argument repeated in a
rule split into one rule each, SCMP_ACT_ERRNO/TRACE default to EPERM.
"""
import json
import os
import select
import signal
import struct
import sys
import tempfile
import time

import seccomp as S

ARCHES = {
    "SCMP_ARCH_NATIVE": S.Arch.NATIVE,
    "SCMP_ARCH_X86": S.Arch.X86,
    "SCMP_ARCH_X86_64": S.Arch.X86_64,
    "SCMP_ARCH_X32": S.Arch.X32,
    "SCMP_ARCH_ARM": S.Arch.ARM,
    "SCMP_ARCH_AARCH64": S.Arch.AARCH64,
    "SCMP_ARCH_MIPS": S.Arch.MIPS,
    "SCMP_ARCH_MIPS64": S.Arch.MIPS64,
    "SCMP_ARCH_MIPS64N32": S.Arch.MIPS64N32,
    "SCMP_ARCH_MIPSEL": S.Arch.MIPSEL,
    "SCMP_ARCH_MIPSEL64": S.Arch.MIPSEL64,
    "SCMP_ARCH_MIPSEL64N32": S.Arch.MIPSEL64N32,
    "SCMP_ARCH_PPC": S.Arch.PPC,
    "SCMP_ARCH_PPC64": S.Arch.PPC64,
    "SCMP_ARCH_PPC64LE": S.Arch.PPC64LE,
    "SCMP_ARCH_S390": S.Arch.S390,
    "SCMP_ARCH_S390X": S.Arch.S390X,
    "SCMP_ARCH_PARISC": S.Arch.PARISC,
    "SCMP_ARCH_PARISC64": S.Arch.PARISC64,
    "SCMP_ARCH_RISCV64": S.Arch.RISCV64,
}
OPS = {
    "SCMP_CMP_NE": S.NE,
    "SCMP_CMP_LT": S.LT,
    "SCMP_CMP_LE": S.LE,
    "SCMP_CMP_EQ": S.EQ,
    "SCMP_CMP_GE": S.GE,
    "SCMP_CMP_GT": S.GT,
    "SCMP_CMP_MASKED_EQ": S.MASKED_EQ,
}
# The arches whose maximum the test needs (runc's stub, x86_64 host).
STUB = {
    "x86_64": S.Arch.X86_64,
    "x32": S.Arch.X32,
    "x86": S.Arch.X86,
    "aarch64": S.Arch.AARCH64,
    "arm": S.Arch.ARM,
}
STUB_NAMES = {
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_ARM": "arm",
}


def action(name, errno):
    e = 1 if errno is None else errno  # EPERM
    return {
        "SCMP_ACT_KILL": S.KILL,
        "SCMP_ACT_KILL_THREAD": S.KILL,
        "SCMP_ACT_KILL_PROCESS": S.KILL_PROCESS,
        "SCMP_ACT_TRAP": S.TRAP,
        "SCMP_ACT_ERRNO": S.ERRNO(e),
        "SCMP_ACT_TRACE": S.TRACE(e),
        "SCMP_ACT_LOG": S.LOG,
        "SCMP_ACT_ALLOW": S.ALLOW,
        "SCMP_ACT_NOTIFY": S.NOTIFY,
    }[name]


def resolves(name):
    try:
        return S.resolve_syscall(S.Arch.NATIVE, name) != -1  # __NR_SCMP_ERROR
    except Exception:
        return False


def compile_one(p, progress=lambda where: None):
    default = action(p["defaultAction"], p.get("defaultErrnoRet"))
    f = S.SyscallFilter(default)
    if p.get("_host") == "aarch64":
        # As on an aarch64 host: aarch64 is the filter's own architecture.
        f.add_arch(S.Arch.AARCH64)
        f.remove_arch(S.Arch.X86_64)
    for a in p.get("architectures") or []:
        try:
            f.add_arch(ARCHES[a])
        except Exception:
            pass  # already there (the native one), as libseccomp-golang ignores
    unknown = sorted({n for r in p.get("syscalls") or [] for n in r["names"] if not resolves(n)})
    for i, r in enumerate(p.get("syscalls") or []):
        act = action(r["action"], r.get("errnoRet"))
        if act == default:
            continue
        args = r.get("args") or []
        conds = [
            S.Arg(a["index"], OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
            for a in args
        ]
        idx = [a["index"] for a in args]
        groups = [[c] for c in conds] if len(set(idx)) < len(idx) else [conds]
        for j, name in enumerate(r["names"]):
            if not resolves(name):
                continue
            for g in groups:
                progress(f"syscalls[{i}].names[{j}] {name}")
                try:
                    f.add_rule(act, name, *g)
                except Exception as e:
                    return {"error": f"syscalls[{i}].names[{j}] {name}: {e}"}
    with tempfile.TemporaryFile() as t:
        f.export_bpf(t)
        t.seek(0)
        b = t.read()
    bpf = [list(struct.unpack("<HBBI", b[k : k + 8])) for k in range(0, len(b), 8)]
    with tempfile.TemporaryFile() as t:
        f.export_pfc(t)
        t.seek(0)
        pfc = t.read().decode()
    listed = {STUB_NAMES[a] for a in p.get("architectures") or [] if a in STUB_NAMES}
    mx = {}
    for key in listed:
        best = -1
        for r in p.get("syscalls") or []:
            for name in r["names"]:
                try:
                    nr = S.resolve_syscall(STUB[key], name)
                except Exception:
                    continue
                if nr >= 0:
                    best = max(best, nr & ~0x40000000)  # x32: without the x32 bit
        if best >= 0:
            mx[key] = best
    return {"bpf": bpf, "pfc": pfc, "max": mx, "unknown": unknown}


def compile_in_child(p):
    """compile_one in a child process: libseccomp 2.5.4 never returns on
    some profiles (it uses tree nodes it has freed), so a child that takes
    longer than LIMIT seconds is killed and the rule it was adding is
    reported as {"error": "syscalls[i].names[j] name: ...", "hang": true}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = os.fdopen(w, "w")

        def progress(where):
            out.write("P " + where + "\n")
            out.flush()

        try:
            res = compile_one(p, progress)
        except Exception as e:  # noqa: BLE001 - reported to the test
            res = {"error": f"helper: {e!r}"}
        out.write("R " + json.dumps(res) + "\n")
        out.flush()
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + LIMIT
    buf = b""
    while True:
        left = deadline - time.monotonic()
        ready = select.select([r], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            os.kill(pid, signal.SIGKILL)
            break
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        buf += chunk
    os.close(r)
    os.waitpid(pid, 0)
    where = "syscalls[?]"
    for line in buf.decode().splitlines():
        if line.startswith("R "):
            return json.loads(line[2:])
        if line.startswith("P "):
            where = line[2:]
    return {"error": f"{where}: libseccomp did not return within {LIMIT} s", "hang": True}


LIMIT = 10


def main():
    out = sys.stdout
    for p in json.load(sys.stdin):
        out.write(json.dumps(compile_in_child(p)) + "\n")
    out.flush()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helpers for scripts/symbol-order.sh (see there).

  symbol-order.py trace OUT CMD...   single-step CMD and every process it
      forks, until CMD exits; append to OUT each distinct instruction
      address they ran, in first-executed order. A process that execs
      anything but CMD's own program (whose entry point tells it apart: a
      workload, a hook) is let go; one that execs CMD's program again
      (capsa's trampoline) is followed.
  symbol-order.py symbols BINARY ADDRFILE...   print, once each and in order
      of first appearance, the text symbols of BINARY containing those
      addresses; their count and total size go to stderr.

ptrace single-stepping is slow (a create takes a minute or two) but sees
every instruction, in every process, whatever syscalls they make.
"""
import bisect
import ctypes
import os
import signal
import subprocess
import sys

PTRACE_TRACEME, PTRACE_PEEKUSER, PTRACE_CONT = 0, 3, 7
PTRACE_SINGLESTEP, PTRACE_DETACH, PTRACE_SETOPTIONS = 9, 17, 0x4200
OPTIONS = 0x2 | 0x4 | 0x8 | 0x10 | 0x100000  # TRACE{FORK,VFORK,CLONE,EXEC}, EXITKILL
EVENT_EXEC = 4
WALL = 0x40000000
RIP_OFFSET = 16 * 8  # struct user_regs_struct, x86_64

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def ptrace(req, pid, addr=0, data=0):
    return libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))


def entry_point(path):
    """e_entry of an ELF64 executable."""
    with open(path, "rb") as f:
        header = f.read(32)
    return int.from_bytes(header[24:32], "little")


def trace(out, argv):
    ours = entry_point(argv[0])
    root = os.fork()
    if root == 0:
        ptrace(PTRACE_TRACEME, 0)
        os.kill(os.getpid(), signal.SIGSTOP)
        os.execv(argv[0], argv)
    os.waitpid(root, WALL)
    ptrace(PTRACE_SETOPTIONS, root, 0, OPTIONS)
    ptrace(PTRACE_CONT, root)
    stepping, seen, order = set(), set(), []
    while True:
        try:
            pid, status = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            stepping.discard(pid)
            if pid == root:
                break
            continue
        if not os.WIFSTOPPED(status):
            continue
        sig, event = os.WSTOPSIG(status), status >> 16
        if event == EVENT_EXEC:
            rip = ptrace(PTRACE_PEEKUSER, pid, RIP_OFFSET) & 0xFFFFFFFFFFFFFFFF
            if rip == ours:
                stepping.add(pid)  # our binary starts (again) here
                ptrace(PTRACE_SINGLESTEP, pid)
            else:
                stepping.discard(pid)
                ptrace(PTRACE_DETACH, pid)  # a workload or hook: not ours
            continue
        if event:  # fork/clone reported; the new process stops by itself
            ptrace(PTRACE_SINGLESTEP if pid in stepping else PTRACE_CONT, pid)
            continue
        if sig == signal.SIGTRAP and pid in stepping:
            rip = ptrace(PTRACE_PEEKUSER, pid, RIP_OFFSET) & 0xFFFFFFFFFFFFFFFF
            if rip not in seen:
                seen.add(rip)
                order.append(rip)
            ptrace(PTRACE_SINGLESTEP, pid)
            continue
        if sig == signal.SIGSTOP and pid not in stepping and pid != root:
            stepping.add(pid)  # a new child of a traced process
            ptrace(PTRACE_SINGLESTEP, pid)
            continue
        ptrace(PTRACE_SINGLESTEP if pid in stepping else PTRACE_CONT, pid, 0, sig)
    with open(out, "a") as f:
        f.writelines(f"{a:x}\n" for a in order)


def symbols(binary, files):
    nm = subprocess.run(
        ["nm", "-n", "-S", "--defined-only", binary], capture_output=True, text=True, check=True
    ).stdout
    starts, syms = [], []
    for line in nm.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            starts.append(int(f[0], 16))
            syms.append((f[3], int(f[1], 16)))
    seen, total = set(), 0
    for path in files:
        with open(path) as f:
            for line in f:
                a = int(line, 16)
                i = bisect.bisect_right(starts, a) - 1
                if i < 0 or a >= starts[i] + max(syms[i][1], 1):
                    continue
                name, size = syms[i]
                if name in seen:
                    continue
                seen.add(name)
                total += size
                print(name)
    print(f"{len(seen)} symbols, {total} bytes of code", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "trace":
        trace(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) > 3 and sys.argv[1] == "symbols":
        symbols(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)

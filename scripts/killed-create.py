#!/usr/bin/env python3
"""SIGKILL `RUNTIME create` at random delays, then `RUNTIME delete --force`, and count
what each kill left behind: cgroup directories, processes, the state directory, and
commands that hung (each under a timeout). Compares runtimes on issue 11's fault case.

usage: scripts/killed-create.py RUNTIME [KILLS] [MAX_DELAY_MS]
Needs root and busybox-static; uses its own --root, bundle and cgroup paths in /tmp.
"""
import json, os, random, shutil, signal, subprocess, sys, tempfile, time

rt = os.path.abspath(sys.argv[1]) if "/" in sys.argv[1] else shutil.which(sys.argv[1])
kills = int(sys.argv[2]) if len(sys.argv) > 2 else 40
max_delay = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
name = os.path.basename(rt)
tmp = tempfile.mkdtemp(prefix=f"killed-create-{name}-")
root, bundle = f"{tmp}/root", f"{tmp}/bundle"
rootfs = f"{bundle}/rootfs"
for d in ["bin", "proc", "dev", "sys", "tmp"]:
    os.makedirs(f"{rootfs}/{d}")
shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
os.symlink("busybox", f"{rootfs}/bin/sleep")
subprocess.run([rt, "spec"], cwd=bundle, check=True)
spec = json.load(open(f"{bundle}/config.json"))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sleep", "1000"]


def cg_dirs(rel):
    out = []
    for h in ["/sys/fs/cgroup"] + [f"/sys/fs/cgroup/{e}" for e in os.listdir("/sys/fs/cgroup")]:
        if os.path.isdir(f"{h}/{rel}"):
            out.append(f"{h}/{rel}")
    return out


def procs_naming(word):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if word.encode() in cmd:
            out.append(int(p))
    return out


def timed(args, limit=10):
    try:
        return subprocess.run([rt, "--root", root] + args, capture_output=True, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        return "hang"


left_cg = left_proc = left_dir = hangs = delete_fail = 0
for i in range(kills):
    cid = f"kc-{os.getpid()}-{i}"
    rel = f"killed-create-{cid}"
    spec["linux"]["cgroupsPath"] = f"/{rel}"
    json.dump(spec, open(f"{bundle}/config.json", "w"))
    p = subprocess.Popen([rt, "--root", root, "create", "--bundle", bundle, cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(0, max_delay) / 1000)
    p.send_signal(signal.SIGKILL)
    p.wait()
    results = [timed(["state", cid]), timed(["list"]), timed(["delete", "--force", cid])]
    hangs += results.count("hang")
    delete_fail += results[2] not in (0, "hang")
    time.sleep(0.1)
    c, pr, d = cg_dirs(rel), procs_naming(cid), os.path.exists(f"{root}/{cid}")
    left_cg += bool(c)
    left_proc += bool(pr)
    left_dir += d
    # Clean up after the runtime, whatever it left, so the next kill starts clean.
    for pid in pr:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.05)
    for x in sorted(c, key=len, reverse=True):
        try:
            os.rmdir(x)
        except OSError:
            pass
    shutil.rmtree(f"{root}/{cid}", ignore_errors=True)

print(f"{name}: {kills} kills of create at 0-{max_delay:.0f} ms: cgroups left {left_cg}, "
      f"processes left {left_proc}, state dir left {left_dir}, hung commands {hangs}, "
      f"delete --force failed {delete_fail}")
shutil.rmtree(tmp, ignore_errors=True)

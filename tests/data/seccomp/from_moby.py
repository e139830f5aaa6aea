#!/usr/bin/python3
"""Translate a moby-format seccomp profile (Docker's default.json, podman's
containers-common seccomp.json) into the linux.seccomp object an engine
hands the runtime on x86_64, as the engines do: the x86_64 archMap entry's
architectures, and the rules whose includes/excludes (capabilities,
architectures, minKernel) match the given capability set.

Usage: from_moby.py PROFILE.json CAP[,CAP...] [aarch64] > out.json
(aarch64: as on an aarch64 host; the output says so with "_host", which
tests/seccomp_libseccomp.rs reads.)
"""
import json
import sys

src = json.load(open(sys.argv[1]))
caps = {"CAP_" + c if not c.startswith("CAP_") else c for c in sys.argv[2].split(",") if c}
arm = len(sys.argv) > 3 and sys.argv[3] == "aarch64"
arch = "SCMP_ARCH_AARCH64" if arm else "SCMP_ARCH_X86_64"
names = {"arm64", "aarch64"} if arm else {"amd64", "x86_64"}
out = {"defaultAction": src["defaultAction"]}
if arm:
    out["_host"] = "aarch64"
if "defaultErrnoRet" in src:
    out["defaultErrnoRet"] = src["defaultErrnoRet"]
for m in src.get("archMap") or []:
    if m["architecture"] == arch:
        out["architectures"] = [arch] + (m.get("subArchitectures") or [])
rules = []
for r in src["syscalls"]:
    inc, exc = r.get("includes") or {}, r.get("excludes") or {}
    if inc.get("arches") and not names & set(inc["arches"]):
        continue
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        continue
    if exc.get("arches") and names & set(exc["arches"]):
        continue
    if exc.get("caps") and set(exc["caps"]) & caps:
        continue
    rule = {"names": r.get("names") or [r["name"]], "action": r["action"]}
    if r.get("args"):
        rule["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a} for a in r["args"]]
    if "errnoRet" in r:
        rule["errnoRet"] = r["errnoRet"]
    rules.append(rule)
out["syscalls"] = rules
json.dump(out, sys.stdout, indent=1)
print()

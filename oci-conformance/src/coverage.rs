//! The normative sentences of runtime-spec v1.3.0 (Linux platform) and of the OCI CLI
//! document that no test checks, each with the reason. Everything else has a test (the
//! requirement column of REPORT.md). Requirements on bundle/config authors, engines or
//! other platforms (Windows, Solaris, FreeBSD, z/OS, VM) are not runtime behaviour and are
//! not listed one by one.

/// (section, level, requirement, why it is not tested)
pub const NOT_COVERED: &[(&str, &str, &str, &str)] = &[
    (
        "runtime.md#state",
        "MUST",
        "Additional status values MUST be used to represent new runtime states not defined above.",
        "no operation of the spec can make a runtime enter a state of its own; paused (runc's) is outside the OCI CLI",
    ),
    (
        "runtime.md#state",
        "MUST",
        "id MUST be unique across all containers on this host.",
        "only within one runtime root is testable (create.duplicate-id-errors); uniqueness across roots is the caller's choice of --root",
    ),
    (
        "runtime.md#state",
        "-",
        "status creating: the container is being created (step 2).",
        "transient: no operation can observe a container during its own create",
    ),
    (
        "runtime.md#warnings",
        "MUST",
        "Logging a warning does not change the flow of the operation; it MUST continue as if the warning had not been logged.",
        "not separately: exercised by hooks.poststop-fails-continues and process.capabilities-unknown-no-fail",
    ),
    (
        "config.md#mounts",
        "SHOULD",
        "ridmap: the mount MUST have an idmapping applied recursively.",
        "idmap is tested (mounts.idmap); ridmap additionally needs submounts that support idmapping",
    ),
    (
        "config.md#configLinuxMountOptions",
        "SHOULD",
        "If a custom option string is already recognized by mount(8), the runtime SHOULD follow the behavior of mount(8).",
        "open-ended: no finite list of such options",
    ),
    (
        "config.md#configLinuxMountOptions",
        "SHOULD/MUST",
        "Each option of the Linux mount options table, one by one.",
        "groups are tested (mounts.options-flags, mounts.options-clear, mounts.bind-propagation, mounts.rbind-submounts, mounts.recursive-ro) and every option the runtime lists is used by features.mount-options",
    ),
    (
        "config.md#linux-process",
        "MUST",
        "capabilities: a value which cannot be mapped or granted MUST be logged as a warning.",
        "the spec does not mandate how or whether a warning is exposed (runtime.md#warnings)",
    ),
    (
        "config.md#linux-process",
        "-",
        "scheduler priority, flags, runtime, deadline, period (defaults 0).",
        "real-time and deadline policies need host admission settings; policy and nice are tested (process.scheduler)",
    ),
    (
        "config.md#linux-process",
        "-",
        "ioPriority applies to the entire process group.",
        "the container's init is checked (process.io-priority); other members are its children and inherit it",
    ),
    (
        "config.md#linux-process",
        "SHOULD",
        "execCPUAffinity.initial: CPUs of the runtime's parent process before the transition to the container's cgroup; final omitted: SHOULD NOT change the affinity.",
        "the runtime's transient process cannot be observed from outside; final is tested (process.exec-cpu-affinity)",
    ),
    (
        "config.md#posix-platform-hooks",
        "MUST",
        "prestart, createRuntime, createContainer: called after the environment is created but before pivot_root.",
        "pivot_root is not observable from a hook; createContainer's path resolving in the runtime namespace is tested",
    ),
    (
        "config.md#annotations",
        "SHOULD",
        "org.opencontainers.image.stopSignal: the signal that SHOULD be sent by the container runtimes to kill the container.",
        "addressed to engines: the CLI's kill has its own default (TERM, cli.kill-default-term)",
    ),
    (
        "config-linux.md#user-namespace-mappings",
        "MAY",
        "The number of mapping entries MAY be limited by the kernel.",
        "MAY",
    ),
    (
        "config-linux.md#control-groups",
        "MUST",
        "A runtime MAY check if the container cgroup is fit for purpose, and MUST generate an error if such a check fails.",
        "conditional on an optional check",
    ),
    (
        "config-linux.md#cgroups-path",
        "MUST",
        "Runtimes MAY consider certain cgroupsPath values to be invalid, and MUST generate an error if this is the case.",
        "conditional on an optional rule",
    ),
    (
        "config-linux.md#cgroup-ownership",
        "MUST",
        "Runtimes MUST NOT fail if delegated files are missing; if /sys/kernel/cgroup/delegate does not exist, the runtime MUST fall back to cgroup.procs, cgroup.subtree_control, cgroup.threads.",
        "the delegate file exists on every kernel in use here and cannot be hidden from the runtime",
    ),
    (
        "config-linux.md#memory",
        "-",
        "memory.kernel, memory.kernelTCP.",
        "NOT RECOMMENDED fields (kernel memory accounting is deprecated)",
    ),
    (
        "config-linux.md#memory",
        "-",
        "memory.useHierarchy.",
        "the kernel forces hierarchical accounting (memory.use_hierarchy is fixed at 1 since Linux 5.x; v2 is always hierarchical)",
    ),
    (
        "config-linux.md#memory",
        "MUST",
        "checkBeforeUpdate: MUST reject a new limit lower than the current usage.",
        "applies to updates; update is not an operation of the spec or of the OCI CLI",
    ),
    (
        "config-linux.md#rdma",
        "-",
        "rdma hcaHandles/hcaObjects.",
        "needs an RDMA device (cgroups.rdma skips without one)",
    ),
    (
        "config-linux.md#intelrdt",
        "MUST",
        "intelRdt: tasks file, closID (and \"/\"), l3CacheSchema/memBwSchema/schemata order, directory creation and removal, enableMonitoring MON groups.",
        "needs Intel RDT hardware with resctrl; only the error without resctrl is testable (intel-rdt.unavailable-errors)",
    ),
    (
        "config-linux.md#intelrdt",
        "MUST",
        "If intelRdt is not set, the runtime MUST NOT manipulate any resctrl pseudo-filesystems.",
        "without resctrl there is nothing to manipulate",
    ),
    (
        "config-linux.md#network-devices",
        "MUST",
        "The runtime MUST NOT actively manage the interface's lifecycle and configuration within the container's network namespace.",
        "negative and open-ended; the observable part (not moved back at delete) is net-devices.not-moved-back",
    ),
    (
        "config-linux.md#seccomp",
        "-",
        "seccomp architectures and flags (TSYNC, LOG, SPEC_ALLOW) effects.",
        "their effects are not observable from the process; features.seccomp checks that listed ones are accepted",
    ),
    (
        "config-linux.md#containerprocessstate",
        "MUST",
        "If more than one sendmsg(2) is used, the file descriptors MUST be sent only in the first call.",
        "the state fits one message; the first message carrying the fd is checked (seccomp.notify)",
    ),
    (
        "config-linux.md#mount-label",
        "-",
        "mountLabel.",
        "no SELinux on this host (mount-label skips)",
    ),
    (
        "runtime-linux.md#file-descriptors",
        "MAY",
        "The runtime MAY pass additional file descriptors; some MAY be redirected to /dev/null.",
        "MAY",
    ),
    (
        "features.md",
        "SHOULD",
        "The content of the Features structure SHOULD be determined on the compilation time of the runtime.",
        "a build-time property; equal output of two calls would not show it",
    ),
    (
        "features.md",
        "MUST",
        "The null value MUST NOT be confused with an empty value.",
        "no observable behaviour beyond the JSON types checked by features.json",
    ),
    (
        "features.md#mount-options",
        "SHOULD",
        "Linux: this array SHOULD NOT contain filesystem-specific mount options.",
        "the spec's own example lists acl and noacl; not judged",
    ),
    (
        "features-linux.md",
        "-",
        "apparmor.enabled, selinux.enabled, intelRdt.*, mountExtensions.idmap.enabled, netDevices.enabled.",
        "no AppArmor, SELinux or resctrl here; idmap and netDevices themselves are tested (mounts.idmap, net-devices)",
    ),
    (
        "cli#global-usage",
        "MUST",
        "Command names MUST NOT start with hyphens; `funC <COMMAND>` MUST be unambiguous.",
        "a property of the runtime's command set, not enumerable; unknown commands are tested (cli.unknown-command-errors)",
    ),
    (
        "cli#console-socket",
        "MUST",
        "The socket type MUST be SOCK_SEQPACKET or SOCK_STREAM; the server MUST send a single response.",
        "requirements on the caller's server (this suite), which listens with SOCK_STREAM",
    ),
    (
        "cli#create",
        "MUST",
        "--console-socket <FD>: the socket is an open file descriptor number.",
        "runc, crun and every engine pass a socket path; the tests use a path (see cli.console-socket-json-request's explanation)",
    ),
];

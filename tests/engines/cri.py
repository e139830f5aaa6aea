#!/usr/bin/python3
"""A minimal CRI client (what kubelet sends to containerd), for
tests/engine_containerd.rs: no crictl is packaged in Debian 12, so this
speaks the CRI v1 gRPC API through python3-grpcio, encoding the few
protobuf messages it needs by hand (field numbers from the CRI api.proto).

    cri.py SOCKET runp NAME UID HANDLER CGROUP_PARENT      -> prints the sandbox id
    cri.py SOCKET create POD NAME UID CGROUP_PARENT IMAGE JSON_ARGS MEMORY_BYTES
                                                            -> prints the container id
    cri.py SOCKET start|stop|rm ID
    cri.py SOCKET exec ID JSON_CMD                          -> the command's stdout,
                                                               stderr and exit code
    cri.py SOCKET stopp|rmp POD

Every call has a deadline (60 s, or $CRI_DEADLINE s: the systemd VM lane runs under
software emulation); a gRPC error exits 1 with its details on stderr.
"""

import json
import os
import sys

import grpc

DEADLINE = int(os.environ.get("CRI_DEADLINE", "60"))


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """One protobuf field: int -> varint, str/bytes -> length-delimited.
    None and empty values are left out (proto3 defaults)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(num << 3) + varint(value) if value else b""
    if isinstance(value, str):
        value = value.encode()
    return varint((num << 3) | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(fields)


def decode(data):
    """Top-level fields of a message: {number: [values]} (varints as int,
    length-delimited as bytes)."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = read_varint(data, i)
        elif wire == 2:
            size, i = read_varint(data, i)
            val, i = data[i:i + size], i + size
        elif wire == 1:
            val, i = data[i:i + 8], i + 8
        elif wire == 5:
            val, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(num, []).append(val)
    return out


def read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def sandbox_config(name, uid, cgroup_parent):
    metadata = msg(field(1, name), field(2, uid), field(3, "capsa-test"))
    # Host network (NamespaceOption.network = NODE): no CNI plug-in needed.
    namespace_options = msg(field(1, 2))
    security = msg(field(1, namespace_options))
    linux = msg(field(1, cgroup_parent), field(2, security))
    return msg(field(1, metadata), field(8, linux))


def call(channel, method, request):
    rpc = channel.unary_unary(f"/runtime.v1.RuntimeService/{method}")
    return decode(rpc(request, timeout=DEADLINE))


def text(fields, num):
    return fields.get(num, [b""])[0].decode()


def main(argv):
    socket, action, args = argv[1], argv[2], argv[3:]
    channel = grpc.insecure_channel(f"unix://{socket}")
    if action == "runp":
        name, uid, handler, cgroup_parent = args
        req = msg(field(1, sandbox_config(name, uid, cgroup_parent)), field(2, handler))
        print(text(call(channel, "RunPodSandbox", req), 1))
    elif action == "create":
        pod, name, uid, cgroup_parent, image, cmd, memory = args
        resources = msg(field(4, int(memory)))
        linux = msg(field(1, resources))
        config = msg(
            field(1, msg(field(1, name))),
            field(2, msg(field(1, image))),
            *[field(3, a) for a in json.loads(cmd)],
            field(15, linux),
        )
        req = msg(field(1, pod), field(2, config),
                  field(3, sandbox_config(name + "-pod", uid, cgroup_parent)))
        print(text(call(channel, "CreateContainer", req), 1))
    elif action in ("start", "rm"):
        method = {"start": "StartContainer", "rm": "RemoveContainer"}[action]
        call(channel, method, msg(field(1, args[0])))
    elif action == "stop":
        call(channel, "StopContainer", msg(field(1, args[0]), field(2, 5)))
    elif action == "exec":
        cid, cmd = args
        req = msg(field(1, cid), *[field(2, a) for a in json.loads(cmd)], field(3, 30))
        res = call(channel, "ExecSync", req)
        print(json.dumps({
            "stdout": text(res, 1),
            "stderr": text(res, 2),
            "exit_code": res.get(3, [0])[0],
        }))
    elif action in ("stopp", "rmp"):
        method = {"stopp": "StopPodSandbox", "rmp": "RemovePodSandbox"}[action]
        call(channel, method, msg(field(1, args[0])))
    else:
        raise SystemExit(f"cri.py: unknown action {action}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except grpc.RpcError as e:
        print(f"cri.py {' '.join(sys.argv[2:])}: {e.code()}: {e.details()}", file=sys.stderr)
        sys.exit(1)

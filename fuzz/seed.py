#!/usr/bin/env python3
"""Writes the fuzz seeds (corpus/, git-ignored) and the bug reproductions (repro/).

Seeds are generated rather than committed: the component seeds are the guests' build output,
and a ProcessRequest is clearer as the code below than as protobuf bytes.
Run after `cd guests && cargo build --release`.
"""

import shutil
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
GUESTS = FUZZ.parent / "guests" / "target" / "wasm32-wasip2" / "release"


# Just enough protobuf encoding for ProcessRequest (see proto/worker_common.proto).
def varint(n):
    n &= (1 << 64) - 1  # negative ints are 10-byte two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def int_field(number, value):
    return varint(number << 3) + varint(value)


def bytes_field(number, value):
    value = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(value)) + value


def task_options(options=(), seconds=None, nanos=0, **strings):
    out = b"".join(bytes_field(1, bytes_field(1, k) + bytes_field(2, v)) for k, v in options)
    if seconds is not None:
        out += bytes_field(2, int_field(1, seconds) + int_field(2, nanos))
    fields = ["partition_id", "application_name", "application_version",
              "application_namespace", "application_service", "engine_type"]
    for number, name in enumerate(fields, start=5):
        if name in strings:
            out += bytes_field(number, strings[name])
    return out


def request(token="token", session="session", task="task", options=None, outputs=("out",),
            payload="payload", deps=(), chunk=None):
    out = bytes_field(1, token) + bytes_field(2, session) + bytes_field(3, task)
    if options is not None:
        out += bytes_field(4, options)
    out += b"".join(bytes_field(5, o) for o in outputs)
    out += bytes_field(6, payload)
    out += b"".join(bytes_field(7, d) for d in deps)
    out += bytes_field(8, "/ignored/the/harness/sets/it")
    if chunk is not None:
        out += bytes_field(9, int_field(1, chunk))
    return out


def library(blob, deps=None):
    """Task options selecting `blob` as the component, and it listed as a dependency."""
    return dict(options=task_options([("ConventionVersion", "v1"), ("LibraryBlobId", blob)]),
                deps=[blob] if deps is None else deps)


SEEDS = {
    "plain": request(options=task_options([("key", "value")], seconds=1, application_name="app"),
                     deps=["dep"], chunk=1024),
    "no-output": request(outputs=()),
    "many-outputs": request(outputs=[f"out{i}" for i in range(20)], deps=["a", "b"]),
    "odd-ids": request(token="", session="", task="", payload="../../etc/passwd",
                       outputs=["../escape", "/abs", "a\0b", ""], deps=["..", ".", "/"], chunk=-1),
    "odd-durations": request(options=task_options(seconds=-5, nanos=-1)),
    "library-in-folder": request(**library("dep")),
    "library-not-dependency": request(**library("lib", deps=["other"])),
    "library-bad-version": request(options=task_options([("ConventionVersion", "v2")])),
    # Ids that are not a plain file name must never become host paths (host_files::plain_name):
    # before b6f0c7a, Components::for_task read these (and /dev/zero until out of memory).
    "library-dotdot-path": request(**library("../../../../../../../../etc/passwd")),
    "library-absolute-path": request(**library("/etc/passwd")),
    "library-other-component": request(**library(str(GUESTS / "fail.wasm"))),
    "library-dev-zero": request(**library("/dev/zero")),
}

# Inputs that show host bugs found while writing the targets (see README.md).
REPRO = {
    # TaskRunner::run computes Instant::now() + max_duration: overflows and panics.
    # Reached only with ARMONIK_WASM_FUZZ_UNCLAMPED=1 (the harness clamps durations).
    "max-duration-overflow": request(options=task_options(seconds=(1 << 63) - 1)),
}


def write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


write(FUZZ / "corpus" / "process_request", SEEDS)
write(FUZZ / "repro" / "process_request", REPRO)
components = FUZZ / "corpus" / "load_component"
# Small seeds too, where mutations are fast: an empty component (the wrong world), a core module.
write(components, {"empty-component": b"\0asm\x0d\0\x01\0", "core-module": b"\0asm\x01\0\0\0"})
for guest in ("echo", "fail"):
    shutil.copyfile(GUESTS / f"{guest}.wasm", components / f"{guest}.wasm")


def file_ops(*ops):
    """host_files input: per operation, its number, the name's length, the name."""
    return b"".join(bytes([op, len(name)]) + name for op, name in ops)


# Every operation on every planted thing (see fuzz_targets/host_files.rs), and names that
# are not plain.
PLANTED = [b"up", b"abs", b"dangling", b"dirlink", b"dir", b"file", b"r"]
ODD = [b"", b".", b"..", b"../outside/canary", b"dirlink/canary", b"/tmp/x", b"a\0b", b"x" * 255]
write(FUZZ / "corpus" / "host_files", {
    "every-op-on-planted": file_ops(*[(op, name) for op in range(9) for name in PLANTED]),
    "every-op-on-odd-names": file_ops(*[(op, name) for op in range(9) for name in ODD]),
})
print(f"seeded {FUZZ / 'corpus'} and {FUZZ / 'repro'}")

"""Ports and unix sockets of the embedded ``weed mini``: free, distinct ports for every listener, and cleanup.

Stable ports keep the endpoint a client saw valid across restarts, and weed keeps master metadata in a directory
named after the master port, so the ports last used are tried first.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from boston_model.store import StoreError

HOST = "127.0.0.1"
PREFERRED_S3_PORT = 8333
# weed's maintenance worker dials the admin gRPC port as admin HTTP port + 10000 and
# ignores -admin.port.grpc, so the two must keep that offset (seaweedfs 4.48).
_ADMIN_GRPC_OFFSET = 10000
_INTERNAL_PORTS = (
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
)
_PORT_PICK_ATTEMPTS = 50


def pick_ports(preferred: Mapping[str, int]) -> dict[str, int]:
    """Free, distinct ports for every weed listener, preferring ``preferred`` ones.

    S3 falls back to 8333, everything else to a port the OS hands out.
    """
    with contextlib.ExitStack() as held:
        # Keep each probe socket bound until all are chosen so no port is picked twice.
        def reserve(port: int) -> int:
            """Binds ``port`` (0: any) and returns it, or 0 if taken."""
            sock = _bind(port) if 0 <= port <= 65535 else None
            if sock is None:
                return 0
            held.enter_context(sock)
            return sock.getsockname()[1]

        def reuse(name: str) -> int:
            return reserve(preferred[name]) if preferred.get(name) else 0

        ports = {"s3.port": reuse("s3.port") or reserve(PREFERRED_S3_PORT)}
        admin = reuse("admin.port")
        if admin and reserve(admin + _ADMIN_GRPC_OFFSET):
            ports["admin.port"] = admin
        for _ in range(_PORT_PICK_ATTEMPTS):
            if "admin.port" in ports:
                break
            admin = reserve(0)
            if 0 < admin <= 65535 - _ADMIN_GRPC_OFFSET and reserve(admin + _ADMIN_GRPC_OFFSET):
                ports["admin.port"] = admin
        if "admin.port" in ports:
            ports["admin.port.grpc"] = ports["admin.port"] + _ADMIN_GRPC_OFFSET
        for name in ("s3.port", *_INTERNAL_PORTS):
            ports[name] = ports.get(name) or reuse(name) or reserve(0)
        if "admin.port" not in ports or not all(ports.values()):
            raise StoreError(f"no free TCP ports on {HOST} for the embedded S3 server")
        return ports


def _bind(port: int) -> socket.socket | None:
    """A socket bound to ``port`` on all interfaces, or None if taken.

    weed also checks the wildcard address, so a port busy on any interface is busy.
    SO_REUSEADDR as in Go's listeners, so a port in TIME_WAIT still counts as free.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", port))
    except OSError:
        sock.close()
        return None
    return sock


def remove_sockets(ports: Mapping[str, int]) -> None:
    """Removes the unix sockets weed names after its ports and sometimes leaves behind."""
    for flag, port in ports.items():
        # e.g. s3.port.grpc=60499 -> /tmp/seaweedfs-s3-grpc-60499.sock
        kind = flag.replace(".port", "").replace(".", "-")
        path = Path("/tmp") / f"seaweedfs-{kind}-{port}.sock"
        with contextlib.suppress(OSError):
            if path.is_socket() and path.stat().st_uid == os.getuid() and not _in_use(path):
                path.unlink()


def _in_use(path: Path) -> bool:
    """Whether a process listens on the unix socket (another server may own the name)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def port_answers(port: int) -> bool:
    """Whether something accepts TCP connections on ``port`` of 127.0.0.1."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False

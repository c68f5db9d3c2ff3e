"""Free TCP ports for the servers this project starts (predictors, trial predictors, test servers)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port on ``host`` that nothing listens on right now: the OS picks it and the probe socket is closed.

    Another process may take it before the caller binds it; callers that start a server treat "address in use" as
    a start failure, as they would any other.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

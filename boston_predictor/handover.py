"""Releases without a gap on one machine: the public listening socket passes from one predictor to the next.

Locally (the process and container deploy targets) a new predictor starts *beside* the one serving, on a private
trial port, and is smoke-tested there. To switch traffic the release sends it SIGUSR1: it then takes the public
listening socket from the handover path (a Unix socket that hands over the descriptor with SCM_RIGHTS), accepts on
it, and offers it at that path itself. Both predictors now accept from the *same* socket, so from one kernel accept
queue; the old one is then stopped (SIGTERM): it closes its copy of the descriptor, finishes what it is serving and
exits, while the queue and every connection waiting in it stay with the new one. No connection is refused or reset.

Why not ``SO_REUSEPORT``: each socket bound with it has its own accept queue, and connections already queued on the
socket being closed are reset when it closes. One shared socket has no such race.

The handover path is only reachable by the user who runs the predictors (it lives in the 0700 state folder; for
the container target, in a folder mounted into the container). What is offered is a socket already bound to the
public address: nothing more than what the serving process has.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

HANDOVER_TIMEOUT_S = 5.0
_IDENTITY_BYTES = 256


@contextlib.contextmanager
def _short(path: Path) -> Iterator[str]:
    """``path`` as a name a Unix socket accepts: through the folder's descriptor, since ``sun_path`` holds 108 bytes
    and state folders (pytest's, a user's home) can be deeper than that."""
    folder = os.open(Path(path).parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{Path(path).name}"
    finally:
        os.close(folder)


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on ``host:port`` (the public address, created once, then handed on)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def receive_listener(path: Path, timeout: float = HANDOVER_TIMEOUT_S) -> tuple[socket.socket, str]:
    """Asks whoever offers at ``path`` for the listening socket.

    Returns:
        The socket, and the identity of the process that offered it.

    Raises:
        OSError: nobody offers at ``path`` (no file, or the offering process is gone), or no descriptor came.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, _short(path) as name:
        conn.settimeout(timeout)
        conn.connect(name)
        identity, fds, _flags, _addr = socket.recv_fds(conn, _IDENTITY_BYTES, 1)
    if not fds:
        raise OSError(f"{path} sent no socket")
    return socket.socket(fileno=fds[0]), identity.decode(errors="replace")


class Offer:
    """Offers ``listener`` at ``path`` until closed: each connection gets the descriptor and ``identity``.

    The Unix socket is bound under a temporary name and renamed onto ``path``, so a client always finds a complete
    offer: the previous holder's until the rename, this one's after it.
    """

    def __init__(self, listener: socket.socket, path: Path, identity: str) -> None:
        self.path = Path(path)
        self._listener = listener
        self._identity = identity.encode()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{id(self)}")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        with _short(temporary) as name:
            self._server.bind(name)
        os.chmod(temporary, 0o666)  # whoever reaches the folder may connect (the container target's user too)
        self._server.listen(8)
        os.replace(temporary, self.path)
        self._closed = False
        self._thread = threading.Thread(target=self._answer, name="listener-handover", daemon=True)
        self._thread.start()

    def _answer(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn, contextlib.suppress(OSError):
                socket.send_fds(conn, [self._identity], [self._listener.fileno()])

    def close(self) -> None:
        """Stops offering (the path is left to whoever renamed onto it since)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()

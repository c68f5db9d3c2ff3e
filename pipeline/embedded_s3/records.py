"""The embedded store's files under ``<state>/s3/``: its keys, the record of the running server, the ports last used.

Every file that holds a key or a pid is written atomically with mode 0600 from the first byte.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from boston_model.store import StoreError


@dataclass(frozen=True)
class ServerRecord:
    """What `ensure_running` wrote to ``server.json`` about the server it started.

    Attributes:
        pid: Process id, also its process-group id.
        port: S3 port on 127.0.0.1.
        data_dir: SeaweedFS data directory.
        ports: Every port passed to weed, by flag name.
    """

    pid: int
    port: int
    data_dir: str
    ports: dict[str, int] = field(default_factory=dict)


def s3_home(state: Path) -> Path:
    """Creates ``<state>/s3`` as 0700 (it holds the keys) and returns it."""
    home = state / "s3"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)  # mkdir's mode is filtered by the umask and skipped if it existed
    return home


def credentials(home: Path) -> dict[str, str]:
    """Loads the keys, generating them on first use; enforces mode 0600."""
    path = home / "credentials.json"
    if path.exists():
        path.chmod(0o600)
        invalid = f"{path} does not hold both keys: delete it to generate new ones"
        try:
            loaded = json.loads(path.read_text())
            keys = {"access_key": str(loaded["access_key"]), "secret_key": str(loaded["secret_key"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(invalid) from exc
        if not all(keys.values()):
            raise StoreError(invalid)
        return keys
    credentials = {
        "access_key": "BH" + secrets.token_hex(9).upper(),
        "secret_key": secrets.token_urlsafe(30),
    }
    write_private(path, credentials)
    return credentials


def write_private(path: Path, payload: object) -> None:
    """Writes JSON atomically with mode 0600 from the first byte."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(partial, path)


def read_record(home: Path) -> ServerRecord | None:
    """The record in ``server.json``, or None if it is missing or torn."""
    try:
        raw = json.loads((home / "server.json").read_text())
        return ServerRecord(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            data_dir=str(raw["data_dir"]),
            ports={str(k): int(v) for k, v in raw.get("ports", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or torn: treat as no server


def read_ports(home: Path) -> dict[str, int]:
    """The ports last used (``ports.json``), tried first on the next start."""
    try:
        raw = json.loads((home / "ports.json").read_text())
        return {str(k): int(v) for k, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}

"""Where a local run keeps its state (store data and keys, serving records, logs, kfp.local outputs)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_STATE_DIR = "BOSTON_STATE_DIR"
APP_NAME = "boston-housing-kfp"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where local state lives; nothing is created here.

    Args:
        env: Variables to read; ``os.environ`` when None.

    Returns:
        ``$BOSTON_STATE_DIR``, else ``$XDG_STATE_HOME/boston-housing-kfp``, else
        ``~/.local/state/boston-housing-kfp``.
    """
    env = os.environ if env is None else env
    if env.get(ENV_STATE_DIR):
        return Path(env[ENV_STATE_DIR]).expanduser()
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]).expanduser() / APP_NAME
    return Path.home() / ".local" / "state" / APP_NAME

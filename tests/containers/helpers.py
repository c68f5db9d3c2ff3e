"""Helpers of the container group: the CLI as a user runs it, a watch on what the engine creates, skip-or-fail."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "BOSTON_REQUIRE_CONTAINERS"
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 900


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail where the container tests must run (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the container tests must run here)", pytrace=False)
    pytest.skip(reason)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          timeout=RUN_TIMEOUT_S)


@dataclass
class ContainerWatch:
    """Every container the engine creates while active, inspected at creation (steps are removed when done)."""

    client: Any
    created: list[dict[str, Any]] = field(default_factory=list)

    def __enter__(self) -> ContainerWatch:
        self._events = self.client.events(decode=True, filters={"type": "container", "event": "create"})
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed; nothing to report
            for event in self._events:
                with contextlib.suppress(Exception):  # gone before inspection: it cannot have been a step
                    self.created.append(self.client.api.inspect_container(event["id"]))

    def __exit__(self, *exc: object) -> None:
        self._events.close()
        self._thread.join(timeout=10)


@dataclass
class Run:
    result: subprocess.CompletedProcess
    created: list[dict[str, Any]]

"""Readable progress for local runs: kfp.local's full log goes to a file, a condensed view to the terminal.

kfp.local prints every step's executor input (a JSON document), its artifacts and its own bookkeeping lines; a
person wants the step names, their status and what the steps themselves say (epochs, metrics, the gate).
"""

from __future__ import annotations

import io
import re
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_PIPELINE_DONE = re.compile(r"Pipeline '([^']+)' finished with status (\w+)")
# TensorFlow's C++ info/warning lines (absl format: I0000 00:00:1795606908.453763 8027 port.cc:153] …).
_ABSL_INFO = re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\]")


class CondensedLog(io.TextIOBase):
    """A text stream that keeps everything in ``full`` and forwards a condensed view to ``terminal``."""

    def __init__(self, terminal: TextIO, full: TextIO) -> None:
        self.terminal = terminal
        self.full = full
        self._pending = ""
        self._skip_json = False
        self._skip_outputs = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.full.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            shown = self._condense(_ANSI.sub("", line))
            if shown is not None:
                self.terminal.write(shown + "\n")
        self.terminal.flush()
        return len(text)

    def flush(self) -> None:
        self.full.flush()
        self.terminal.flush()

    def _condense(self, line: str) -> str | None:
        body = line.strip()
        if self._skip_json:
            # The executor input is a JSON document printed with a 4-space indent; it ends at its closing brace.
            if line.rstrip() == "    }":
                self._skip_json = False
            return None
        if self._skip_outputs:
            if body.startswith("----"):
                self._skip_outputs = False
            return None
        if "Got executor_input:" in body:
            self._skip_json = True
            return None
        if re.search(r"Task '[^']+' outputs:", body):
            self._skip_outputs = True
            return None
        if match := _EXECUTING.search(body):
            return f"  [{match.group(1)}] started"
        if match := _FINISHED.search(body):
            return f"  [{match.group(1)}] {match.group(2).lower()}"
        if match := _PIPELINE_DONE.search(body):
            return f"  pipeline {match.group(2).lower()}"
        noise = ("[KFP Executor", "----", "WARNING: All log messages")
        if not body or _ABSL_INFO.match(body) or body.startswith(noise) or "Streamed logs:" in body:
            return None
        if "Running pipeline:" in body:
            return None
        return f"      {body}"

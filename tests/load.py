"""Steady client load for release tests: what a user's client sees while a new version takes over."""

from __future__ import annotations

import threading
import time

import numpy as np
import requests


class SteadyLoad:
    """One client sending a V1 request every 20 ms on a new connection each time (bounded: at most ``limit_s``)."""

    def __init__(self, url: str, rows: np.ndarray, limit_s: float = 120.0) -> None:
        self.url, self.body, self.limit_s = url, {"instances": rows.tolist()}, limit_s
        self.answers: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                response = requests.post(self.url, json=self.body, timeout=10)
                if response.status_code == 200:
                    self.answers.append(response.json()["predictions"][0][0])
                else:
                    self.failures.append(f"HTTP {response.status_code}")
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self._stop.wait(0.02)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

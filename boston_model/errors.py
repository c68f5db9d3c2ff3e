"""The project's expected failures: one base type, and the one way to cut a message down to a line.

An expected failure (bad input, an unreachable store, a model that cannot be served) is shown to people as one line;
anything else is a bug and keeps its traceback. Every expected error type derives from `OneLineError`, so the step
wrappers and the CLIs catch one type, not a list that must know every module.
"""

from __future__ import annotations


class OneLineError(RuntimeError):
    """An expected failure whose message is one readable line; whitespace (newlines included) is collapsed."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


def first_line(text: object, default: str = "") -> str:
    """The first non-empty line of ``text`` (an exception or a string), stripped; ``default`` when there is none."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else default

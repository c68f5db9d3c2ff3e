"""The project's few error types, chosen by what the user must do, and the one way to cut a message to a line.

An expected failure is shown to people as one line; anything else is a bug and keeps its traceback. Every expected
error derives from `OneLineError`, so the step wrappers and the CLIs catch one type:

* `BadInput`: fix what you gave (a parameter, a file, a version id, a model card, a ``serving`` key);
* `StoreError` (`boston_model.store`): check the object store (address, keys, bucket);
* `ReleaseFailed`: the version could not be served; what served before still serves (the message says so);
* `ClusterRefused`: the Kubernetes or Kubeflow API said no (permissions, a missing CRD, a conflict).

A gate that fails is not an error: the run ends with its report and exit code 3.
"""

from __future__ import annotations


class OneLineError(RuntimeError):
    """An expected failure whose message is one readable line; whitespace (newlines included) is collapsed."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


class BadInput(OneLineError):
    """Something the user gave cannot be used: the message names it and what would be accepted."""


class ReleaseFailed(OneLineError):
    """A version could not be served, smoke-tested or switched to; nothing serving changed, or it was put back."""


class ClusterRefused(OneLineError):
    """The Kubernetes (KServe) or Kubeflow Pipelines API refused or failed a request."""


def first_line(text: object, default: str = "") -> str:
    """The first non-empty line of ``text`` (an exception or a string), stripped; ``default`` when there is none."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else default


def last_line(text: object, default: str = "") -> str:
    """The last non-empty line of ``text``, stripped (a log's last word); ``default`` when there is none."""
    return first_line("\n".join(reversed(str(text).splitlines())), default)

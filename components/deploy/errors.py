"""The deploy step's failures, shared by every target (local process, KServe)."""

from __future__ import annotations

from boston_model.errors import OneLineError


class DeployError(OneLineError):
    """The model could not be served; the message is one line for people."""


class KServeDeployError(DeployError):
    """The model could not be served on KServe; the message is one line for people."""

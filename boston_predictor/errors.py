"""The predictor's two error types: a refused request (an HTTP status and one line) and a failed start-up."""

from __future__ import annotations

from boston_model.errors import OneLineError


class RequestError(Exception):
    """A request the server refuses; the message names what is wrong and never carries paths or values of the env.

    Attributes:
        status: The HTTP status to answer with.
        message: One line for the client.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StartupError(OneLineError):
    """The server cannot start; the message is the one line printed on stderr (the project's one-line error)."""

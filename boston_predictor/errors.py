"""The predictor's own error: a refused request (an HTTP status and one line). Start-up failures are BadInput."""

from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses; the message names what is wrong and never carries paths or values of the env.

    Attributes:
        status: The HTTP status to answer with.
        message: One line for the client.
        declared: For a 413, the body's Content-Length when it had one (how much is left to drain).
    """

    def __init__(self, status: int, message: str, declared: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.declared = declared



"""The exception family of amilab.

Every error a user can meet derives from :class:`AMIError`, so ``except AMIError``
catches them all. Errors that answer a server reply carry that reply as
``.response`` (a :class:`~amilab.protocol.Message`) so the caller can look at
exactly what Asterisk said. Messages never include a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amilab.protocol import Message


class AMIError(Exception):
    """Base class; ``response`` is the server's reply when there was one."""

    def __init__(self, text: str, response: Message | None = None) -> None:
        super().__init__(text)
        self.response = response


class ProtocolError(AMIError):
    """The peer sent bytes that are not AMI (or a message beyond the size limit)."""


class AuthenticationError(AMIError):
    """Login failed. Asterisk gives the same reply for a wrong secret, an unknown
    user and an ACL rejection, then closes the connection."""


class PermissionDenied(AMIError):
    """The user's ``write`` classes do not allow the action (or nobody logged in)."""


class ActionTimeout(AMIError):
    """No response with the action's ActionID arrived in time."""


class ConnectionLost(AMIError):
    """The connection closed (or failed) while something was waiting on it."""

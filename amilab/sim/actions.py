"""The PBX-facing AMI actions of the simulated Asterisk, and their registry.

The session (amilab/sim/session.py) handles Login, Logoff, Challenge, Events,
Filter and ListCommands itself; every other action is looked up here by name
(case-insensitively, as Asterisk's action_find does) and run with an
:class:`ActionCall`. Handlers build Asterisk 22's exact replies: header names,
order, texts, and the ActionID where Asterisk puts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from amilab.protocol import Message

if TYPE_CHECKING:
    from amilab.sim.pbx import PBX

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Caller:
    """Who runs the action, as far as a handler may need to know."""

    username: str
    write: int  #: the user's write class mask (Originate's app blacklist, GetVar SHELL)
    address: str


class ManagerView(Protocol):
    """What the manager half offers to actions (implemented by the server)."""

    def run_cli(self, line: str) -> str | None:
        """Output of a ``manager ...`` CLI command; None when it is not one."""

    def reload(self) -> str:
        """Re-read manager.conf; "" on success, else the error text."""


@dataclass
class ActionCall:
    """One action being run.

    Handlers call :attr:`reply` exactly once with every message of the answer
    (response first, then list items and the Complete event), each a list of
    ``(name, value)`` in wire order with the ActionID already placed. It may be
    called later from another thread (a sync Originate answers when the callee
    does); until then the session runs no further action and holds its events,
    like Asterisk's blocked session thread.
    """

    request: Message
    caller: Caller
    pbx: PBX
    manager: ManagerView
    reply: Callable[[list[Headers]], None]


@dataclass(frozen=True)
class ActionSpec:
    name: str  #: registered spelling, e.g. "CoreShowChannels"
    privilege: int  #: write classes; any shared bit suffices; 0 = anyone logged in
    synopsis: str  #: the ListCommands text
    handler: Callable[[ActionCall], None]


#: Every PBX action, keyed by ``name.lower()``.
ACTIONS: dict[str, ActionSpec] = {}

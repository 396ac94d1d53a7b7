"""amilab: learn the Asterisk Manager Interface hands-on.

The map, left to right: socket bytes → :mod:`amilab.protocol` (sans-IO parser)
→ :class:`amilab.AMIClient` → :mod:`amilab.frames` (pandas) → :mod:`amilab.panels`
(ipywidgets). :mod:`amilab.sim` is a simulated Asterisk 22 built on the same parser.
"""

import logging

from amilab.client import AMIClient, ListResult, TranscriptEntry
from amilab.connect import connect
from amilab.errors import (
    ActionTimeout,
    AMIError,
    AuthenticationError,
    ConnectionLost,
    PermissionDenied,
    ProtocolError,
)
from amilab.protocol import Message, Parser, encode_action

__all__ = [
    "AMIClient",
    "AMIError",
    "ActionTimeout",
    "AuthenticationError",
    "ConnectionLost",
    "ListResult",
    "Message",
    "Parser",
    "PermissionDenied",
    "ProtocolError",
    "TranscriptEntry",
    "connect",
    "encode_action",
]
__version__ = "0.1.0"

# A library logs; the application decides where it goes. Without this, Python's
# last-resort handler would print amilab's warnings from background threads into
# whichever notebook cell happens to be running.
logging.getLogger(__name__).addHandler(logging.NullHandler())

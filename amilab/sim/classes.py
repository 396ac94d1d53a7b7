"""AMI permission classes: the bits behind ``read=``/``write=`` and ``Privilege:``.

Bit values from Asterisk 22 include/asterisk/manager.h; names, their order and
the parsing rules from main/manager.c (``perms[]``, ``get_perm``,
``authority_to_str``, ``ast_instring``).
"""

from __future__ import annotations

SYSTEM = 1 << 0
CALL = 1 << 1
LOG = 1 << 2
VERBOSE = 1 << 3
COMMAND = 1 << 4
AGENT = 1 << 5
USER = 1 << 6
CONFIG = 1 << 7
DTMF = 1 << 8
REPORTING = 1 << 9
CDR = 1 << 10
DIALPLAN = 1 << 11
ORIGINATE = 1 << 12
AGI = 1 << 13
CC = 1 << 15
AOC = 1 << 16
TEST = 1 << 17
SECURITY = 1 << 18
MESSAGE = 1 << 30
ALL = 2**31 - 1  # INT_MAX

#: Name → bit, in the order Asterisk writes them in a Privilege header.
CLASSES: dict[str, int] = {
    "system": SYSTEM,
    "call": CALL,
    "log": LOG,
    "verbose": VERBOSE,
    "command": COMMAND,
    "agent": AGENT,
    "user": USER,
    "config": CONFIG,
    "dtmf": DTMF,
    "reporting": REPORTING,
    "cdr": CDR,
    "dialplan": DIALPLAN,
    "originate": ORIGINATE,
    "agi": AGI,
    "cc": CC,
    "aoc": AOC,
    "test": TEST,
    "security": SECURITY,
    "message": MESSAGE,
}


def _instring(bigstr: str, smallstr: str) -> bool:
    """Asterisk's ast_instring with a comma delimiter: is ``smallstr`` one of the
    comma-separated items of ``bigstr``? Case-sensitive, no trimming; a non-final
    item also matches a name it is a prefix of, and an empty item matches all."""
    start = 0
    while True:
        end = bigstr.find(",", start)
        if end < 0:
            return bigstr[start:] == smallstr
        if smallstr.startswith(bigstr[start:end]):
            return True
        start = end + 1


def parse_perms(text: str) -> int:
    """The class mask of a ``read=``/``write=``/``EventMask`` list, as get_perm does:
    ``"system,call"`` → SYSTEM|CALL; ``"system, call"`` → SYSTEM only; ``"all"`` → ALL."""
    mask = 0
    for name, bit in (*CLASSES.items(), ("all", ALL)):
        if _instring(text, name):
            mask |= bit
    return mask


def perms_to_str(mask: int) -> str:
    """A Privilege value, as authority_to_str writes it: ``"call,all"``;
    ``"<none>"`` for 0 (the form ListCommands shows)."""
    if mask == 0:
        return "<none>"
    names = [name for name, bit in CLASSES.items() if mask & bit]
    return ",".join([*names, "all"])

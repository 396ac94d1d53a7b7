"""A simulated Asterisk 22 for learning AMI without a PBX.

:class:`SimulatedAsterisk` listens on a real TCP port and answers like
Asterisk 22.10.1 (the recordings in tests/data are the reference); its PBX
(:mod:`amilab.sim.pbx`) makes endpoints register and calls happen. The
manager half (config, session, server) speaks AMI; the PBX half (clock, pbx,
actions, clicommands) is the telephone system behind it.

The names below are loaded on first use, so importing one module of the
package never drags in the others (and never forms an import cycle).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SimulatedAsterisk": "amilab.sim.server",
    "ConfigError": "amilab.sim.config",
    "DEFAULT_MANAGER_CONF": "amilab.sim.config",
    "ManagerConfig": "amilab.sim.config",
    "parse_manager_conf": "amilab.sim.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'amilab.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

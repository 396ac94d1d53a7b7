"""The ``amilab`` command (also ``python -m amilab``)."""

from __future__ import annotations

import argparse
import sys

from amilab.sim import cli as sim_cli


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="amilab", description="amilab: learn the Asterisk Manager Interface hands-on."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_cli.add_serve_command(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

"""`edgevision` command line: a thin layer over the same API a user can call.

Each sub-command is a module with HELP, add_arguments(parser) and main(args) -> int:
run and info here, the build side's registered through an entry-point group (commands.py).
A command's module imports nothing heavy until its main() runs, so `edgevision --help`
stays light. While it runs, the library's log messages show on stderr (logs.py).
"""
from __future__ import annotations

import argparse
import sys

from ..errors import EdgeVisionError
from .commands import STALE, Command, commands, registered
from .logs import show_logs


def build_parser(found: list[Command] | None = None, stale: bool = False) -> argparse.ArgumentParser:
    """The parser for `found` (default: every command); stale: say that no build-side command is registered."""
    from .. import __version__

    found = commands() if found is None else found
    parser = argparse.ArgumentParser(prog="edgevision", description="Take a detector or segmenter to the edge.",
                                     epilog=STALE if stale else None)
    parser.add_argument("--version", action="version", version=f"edgevision {__version__}")
    parser.set_defaults(_command=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in found:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.set_defaults(_command=command)
        if command.module is not None:
            command.module.add_arguments(p)
        else:  # listed, so that running it says what is missing rather than "invalid choice"
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = registered()
    found = commands(names)
    if not names and argv and not argv[0].startswith("-") and argv[0] not in {c.name for c in found}:
        print(f"edgevision: {STALE}", file=sys.stderr)
    parser = build_parser(found, stale=not names)
    args = parser.parse_args(argv)
    command: Command | None = args._command
    if command is None:
        parser.print_help()
        return 0
    try:
        if command.module is None:
            raise EdgeVisionError(f"this command is unavailable here: {command.unavailable}")
        with show_logs(("edgevision", *command.loggers)):
            return int(command.module.main(args) or 0)
    except EdgeVisionError as exc:
        print(f"edgevision {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgevision {args.command}: interrupted", file=sys.stderr)
        return 130

"""Which sub-commands `edgevision` has: the runtime's own, and those other packages register.

A command is a module with HELP (one line), add_arguments(parser) and main(args) -> int,
and optionally LOGGERS: logger namespaces besides `edgevision` whose INFO messages it shows.
The runtime's commands (run, info) are listed here. The build side's (convert, verify from
converters; build from edgevision.build) are declared in setup.py under the entry-point
group `edgevision.commands`, so the runtime lists them without importing, or naming, the
build side, and runs without it: a registered command whose module cannot be imported is
still listed, and running it says what to install.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

from .._lazy import install_hint, missing

GROUP = "edgevision.commands"
# The runtime's own commands: name -> module.
OWN = {"run": "edgevision.cli.run", "info": "edgevision.cli.info"}


@dataclass(frozen=True)
class Command:
    """module: None when it cannot be imported here; `unavailable` then says why and what to
    install, `hint` only what to install (for the help text)."""

    name: str
    target: str
    module: ModuleType | None
    unavailable: str = ""
    hint: str = ""

    @property
    def loggers(self) -> tuple[str, ...]:
        """Logger namespaces besides `edgevision` the command shows (its optional LOGGERS)."""
        return tuple(getattr(self.module, "LOGGERS", ()))

    @property
    def help(self) -> str:
        return str(self.module.HELP) if self.module is not None else f"(unavailable here: {self.hint})"


def registered() -> dict[str, str]:
    """name -> module of the commands other packages register in GROUP (installed metadata)."""
    return {ep.name: ep.module for ep in entry_points(group=GROUP)}


def load(name: str, target: str) -> Command:
    try:
        module = importlib.import_module(target)
    except ImportError as exc:
        absent = exc.name or target
        return Command(name, target, None, missing(absent, exc), install_hint(absent))
    return Command(name, target, module)


def commands(names: dict[str, str] | None = None) -> list[Command]:
    """Every command, the runtime's first; a registered name never replaces one of them.
    names: what registered() returned, when the caller has it already."""
    names = registered() if names is None else names
    found = {**OWN, **{n: t for n, t in names.items() if n not in OWN}}
    return [load(name, target) for name, target in found.items()]


# What `edgevision` says when no package has registered a command: a checkout run without
# being installed, or an editable install made before setup.py declared the group.
STALE = (
    "the build side's commands (convert, build, verify) are registered when edgevision is installed, and "
    "none is here: install it (pip install -e . in a checkout; again if the install predates them)"
)

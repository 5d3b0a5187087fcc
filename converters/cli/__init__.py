"""The build side's `edgevision` sub-commands: convert and verify.

They are registered in setup.py under the entry-point group `edgevision.commands`, which
edgevision.cli reads: the runtime's command line lists them without importing, or naming,
this package. Each module has HELP, add_arguments(parser) and main(args) -> int, and
imports nothing heavy until main() runs, so `edgevision --help` stays light.
"""

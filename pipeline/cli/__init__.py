"""The command line: run, run --once, check, demo, config, and the exit codes."""

from pipeline.cli.main import main

__all__ = ["main"]

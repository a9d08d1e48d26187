"""The command line: argument parsing and the one output channel for user messages."""

from runner.cli.main import main

__all__ = ["main"]

"""`vsr <command>` (or `python -m vsr_core <command>`): the command line.

Each command lives next to the code it drives and exposes
`register(subparsers)`, which adds its parser and sets `func` to a function
taking the parsed arguments and returning an exit code. Add new commands to
COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from . import __version__
from .errors import Interrupted, VSRError
from .machine import tune_allocator

# A path the user gave that the operating system refuses, wherever a command meets it, is a message.
PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP)

# Modules (relative to vsr_core) whose register() adds a command.
COMMAND_MODULES = [
    ".commands.upscale",
    ".commands.restore",
    ".commands.inspect",
    ".commands.flow",
    ".commands.train",
    ".commands.relay_fusion",
    ".commands.train_diffusion",
]


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except where there is none to show (None, off) or the help
    already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsr",
        description="Temporally consistent video super-resolution (also run as `python -m vsr_core`).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name, __package__).register(subparsers)
    for command in subparsers.choices.values():
        command.formatter_class = DefaultsFormatter
        for action in command._actions:      # options without help text still show their default
            if action.help is None and action.option_strings and action.default not in (None, False):
                action.help = "default: %(default)s"
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("upscale", "restore"):
        tune_allocator()
    return exit_code(args.func, args)


def exit_code(func, args) -> int:
    """Run a command function; a cancel or a VSRError becomes a one-line message and its exit code."""
    try:
        return int(func(args) or 0)
    except (Interrupted, KeyboardInterrupt) as err:
        # a job says what it kept (jobs.file_job); elsewhere nothing was written
        print(f"\ninterrupted: {str(err) or 'no output was written'}", file=sys.stderr)
        return 130
    except VSRError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in PATH_ERRNOS:
            raise
        hint = "; each name in a path may hold at most 255 bytes" if err.errno == errno.ENAMETOOLONG else ""
        print(f"\nerror: cannot use the path '{err.filename}': {os.strerror(err.errno)}{hint}", file=sys.stderr)
        return 2

"""The ``thinkstop`` command.

Subcommands are plugins: each package that offers one registers a function that adds its
parser, under the ``thinkstop.commands`` entry-point group (see pyproject.toml), the way
simonw/llm finds its plugins. So the command sits above every package without importing
any of them: ``serve`` lives with the proxy, ``replay``, ``tune`` and ``bench`` with the
benchmark, and a third-party package can add its own. Each subcommand's options live next
to the code that runs it; heavy modules (litellm, llama.cpp, matplotlib) load only when
their subcommand runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

GROUP = "thinkstop.commands"
# The order `thinkstop --help` lists them in; others follow alphabetically.
ORDER = ("serve", "replay", "tune", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thinkstop",
        description=(
            "Adaptive reasoning scheduler: an OpenAI-compatible proxy that probes a "
            "reasoning model's answer while it thinks and halts the thinking once the "
            "answer plateaus."
        ),
        epilog="Run 'thinkstop COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if not found:
        parser.error("no commands are registered: install thinkstop (pip install -e .) "
                     "so that its entry points exist")
    rank = {name: i for i, name in enumerate(ORDER)}
    for name in sorted(found, key=lambda n: (rank.get(n, len(ORDER)), n)):
        found[name].load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader left early (``| head``): not a failure worth a traceback. Point
        # stdout at /dev/null so that the interpreter's final flush does not raise again,
        # and exit as a command killed by SIGPIPE does (128 + 13).
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``thinkstop`` command: ``serve``, ``replay`` and ``bench``.

Each subcommand's options live next to the code that runs it; heavy modules (litellm,
llama.cpp, matplotlib) are imported only when their subcommand runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from thinkstop.benchmarks.cli import add_bench_parser
    from thinkstop.benchmarks.replay_cli import add_replay_parser
    from thinkstop.proxy.entrypoints.serve import add_serve_parser

    parser = argparse.ArgumentParser(
        prog="thinkstop",
        description=(
            "Adaptive reasoning scheduler: an OpenAI-compatible proxy that probes a "
            "reasoning model's answer while it thinks and halts the thinking once the "
            "answer plateaus."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_serve_parser(sub)
    add_replay_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

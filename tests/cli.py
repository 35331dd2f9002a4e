"""How tests start the ``thinkstop`` command: in a subprocess (the installed entry
point's module, run with this interpreter), or ``thinkstop bench`` in this process."""

import argparse
import sys

THINKSTOP = [sys.executable, "-m", "thinkstop.proxy.entrypoints.cli"]


def bench_main(argv: list[str]) -> int:
    """``thinkstop bench ...`` in this process (argv without ``thinkstop``)."""
    from thinkstop.benchmarks.cli import add_bench_parser

    parser = argparse.ArgumentParser(prog="thinkstop")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code

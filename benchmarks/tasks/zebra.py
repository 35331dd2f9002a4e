"""Deduction: the zebra puzzles of BIG-Bench Extra Hard (Kazemi et al., 2025).

200 puzzles with 5/6/7/8 people (40/36/74/50); each asks "What position is the person
who ... at?" and the target is a position. The file downloads at run time from
google-deepmind/bbeh at a pinned commit (see :mod:`thinkstop.benchmarks.data`). The paper
(Gema et al., arXiv 2507.14417) uses these puzzles as its deduction stress test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from thinkstop.benchmarks.data import ZEBRA, resolve
from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX, Item, interleave, seeded_shuffle

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

_SIZE: Final = re.compile(r"There are (\d+) people")


def parse_puzzles(raw: Any) -> list[Item]:
    """Items from the BBEH task.json object, in file order (ids by index)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("examples"), list):
        raise ValueError("BBEH zebra file: expected an object with an 'examples' list")
    items: list[Item] = []
    for index, example in enumerate(raw["examples"]):
        text, target = str(example["input"]), str(example["target"]).strip()
        match = _SIZE.search(text)
        if match is None:
            raise ValueError(f"BBEH zebra example {index}: no 'There are N people' line")
        size = int(match.group(1))
        clues = len(re.findall(r"^Clue \d+:", text, flags=re.MULTILINE))
        items.append(
            Item(
                id=f"zebra_puzzles-{index:03d}",
                task="zebra_puzzles",
                prompt=f"{text.rstrip()}\n\n{OPEN_SUFFIX}",
                expected=target,
                kind="open",
                level=str(size),
                meta={"grid_size": size, "num_clues": clues, "source": "bbeh"},
            )
        )
    return items


def load_puzzles(data_dir: Path | None = None) -> list[Item]:
    path = resolve(ZEBRA, data_dir)
    return parse_puzzles(json.loads(path.read_text(encoding="utf-8")))


def zebra_puzzles(n: int, seed: int, data_dir: Path | None = None) -> list[Item]:
    """``n`` puzzles, shuffled by ``seed`` within each grid size, sizes in turn."""
    items = load_puzzles(data_dir)
    sizes = sorted({int(i.level) for i in items})
    groups = [
        seeded_shuffle([i for i in items if i.level == str(s)], seed, f"zebra{s}") for s in sizes
    ]
    return interleave(groups, n)


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader (:mod:`thinkstop.benchmarks.tasks`)."""
    return zebra_puzzles(n, seed, options.data_dir)

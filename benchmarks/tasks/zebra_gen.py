"""Our own zebra puzzles: 5-8 people, BBEH-style wording, irrelevant clues, unique answer.

A seeded hidden solution; true clues are added while they narrow the solver's
propagation, until it fixes every position; clues that propagation does not need are then
dropped. Uniqueness is proved by :func:`~thinkstop.benchmarks.tasks.zebra_solver.count_solutions`
(exact search), and the answer is read from the proved solution. Irrelevant clues, as in
BIG-Bench Extra Hard, talk about attribute values nobody in the row has.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from thinkstop.benchmarks.tasks._zebra_words import CATEGORIES, Category
from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX, Item, interleave
from thinkstop.benchmarks.tasks.zebra_solver import (
    Constraint,
    Kind,
    count_solutions,
    propagation_solves,
)

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

LEVELS: Final = (5, 6, 7, 8)


_ORDINALS: Final = ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th")
_WEIGHTS: Final[tuple[tuple[str, int], ...]] = (
    ("same", 5),
    ("not_same", 3),
    ("between", 3),
    ("ends", 1),
    ("imm_left", 3),
    ("next_to", 3),
    ("left_of", 2),
    ("at", 1),
    ("not_at", 1),
)


@dataclass(frozen=True, slots=True)
class Puzzle:
    size: int
    categories: tuple[Category, ...]
    values: tuple[tuple[str, ...], ...]  # per category, the n values in the row
    solution: tuple[tuple[int, ...], ...]  # per category, the position of each value
    clues: tuple[str, ...]
    constraints: tuple[Constraint, ...]
    num_irrelevant: int
    question_var: int

    @property
    def answer(self) -> int:
        """1-based position asked for."""
        cat, val = divmod(self.question_var, self.size)
        return self.solution[cat][val] + 1


class _Builder:
    def __init__(self, rng: random.Random, size: int, num_categories: int) -> None:
        self.rng, self.n = rng, size
        self.cats = tuple(rng.sample(CATEGORIES, num_categories))
        self.values = tuple(tuple(rng.sample(c.values, size)) for c in self.cats)
        self.pos = tuple(tuple(rng.sample(range(size), size)) for _ in self.cats)
        # person (position) -> variable of each category
        self.at = [
            [c * size + self.pos[c].index(p) for c in range(num_categories)] for p in range(size)
        ]

    def name(self, var: int) -> str:
        cat, val = divmod(var, self.n)
        return self.cats[cat].phrase.format(self.values[cat][val])

    def var_at(self, person: int, exclude_cat: int = -1) -> int:
        cats = [c for c in range(len(self.cats)) if c != exclude_cat]
        return self.at[person][self.rng.choice(cats)]

    def clue(self) -> tuple[str, list[Constraint]]:
        rng, n = self.rng, self.n
        kinds, weights = zip(*_WEIGHTS, strict=True)
        kind = rng.choices(kinds, weights)[0]
        p, q = rng.sample(range(n), 2)
        if kind == "same":
            a = self.var_at(p)
            b = self.var_at(p, exclude_cat=a // n)
            return f"{self.name(a)} is {self.name(b)}.", [Constraint("same", a, b)]
        if kind == "not_same":
            a, b = self.var_at(p), self.var_at(q)
            return f"{self.name(a)} is not {self.name(b)}.", [Constraint("not_same", a, b)]
        if kind == "at":
            a = self.var_at(p)
            return f"{self.name(a)} is at the {_ORDINALS[p]} position.", [Constraint("at", a, p)]
        if kind == "not_at":
            a = self.var_at(p)
            return (
                f"{self.name(a)} is not at the {_ORDINALS[q]} position.",
                [Constraint("not_at", a, q)],
            )
        if kind == "ends":
            a = self.var_at(rng.choice([0, n - 1]))
            return f"{self.name(a)} is at one of the ends.", [Constraint("ends", a)]
        if kind == "between":
            left, mid, right = sorted(rng.sample(range(n), 3))
            a, b, c = self.var_at(mid), self.var_at(left), self.var_at(right)
            return (
                f"{self.name(a)} is somewhere in between {self.name(b)} and {self.name(c)} "
                "in that order.",
                [Constraint("left_of", b, a), Constraint("left_of", a, c)],
            )
        lo, hi = min(p, q), max(p, q)
        if kind in ("imm_left", "next_to"):
            hi = lo + 1
            if kind == "next_to" and rng.random() < 0.5:
                lo, hi = hi, lo
        a, b = self.var_at(lo), self.var_at(hi)
        words = {
            "imm_left": "immediately to the left of",
            "next_to": "next to",
            "left_of": "somewhere to the left of",
        }[kind]
        real: Kind = (
            "next_to" if kind == "next_to" else "imm_left" if kind == "imm_left" else "left_of"
        )
        return f"{self.name(a)} is {words} {self.name(b)}.", [Constraint(real, a, b)]

    def irrelevant(self) -> str:
        """A clue about a value nobody in the row has (so it constrains nothing)."""
        cat = self.rng.randrange(len(self.cats))
        unused = [v for v in self.cats[cat].values if v not in self.values[cat]]
        ghost = self.cats[cat].phrase.format(self.rng.choice(unused))
        other = self.name(self.var_at(self.rng.randrange(self.n), exclude_cat=cat))
        relation = self.rng.choice(
            [
                "is",
                "is next to",
                "is somewhere to the left of",
                "is immediately to the left of",
                "is not",
            ]
        )
        return f"{ghost} {relation} {other}."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def generate_puzzle(
    rng: random.Random, size: int, num_categories: int = 5, irrelevant: tuple[int, int] = (2, 6)
) -> Puzzle:
    """One puzzle whose unique solution is proved by exact search."""
    builder = _Builder(rng, size, num_categories)
    k = num_categories
    chosen: list[tuple[str, list[Constraint]]] = []
    constraints: list[Constraint] = []
    for _ in range(5000):
        if propagation_solves(size, k, constraints):
            break
        text, new = builder.clue()
        if not propagation_solves(size, k, constraints + new):
            before = _narrowing(size, k, constraints)
            after = _narrowing(size, k, constraints + new)
            if after >= before:
                continue
        chosen.append((text, new))
        constraints += new
    else:  # pragma: no cover - the "at" clues make this unreachable in practice
        raise RuntimeError("zebra generator did not converge")
    rng.shuffle(chosen)
    kept = list(chosen)
    for clue in chosen:
        trial = [c for c in kept if c is not clue]
        if propagation_solves(size, k, [x for _, cs in trial for x in cs]):
            kept = trial
    final = [x for _, cs in kept for x in cs]
    count, solution = count_solutions(size, k, final)
    if count != 1 or solution is None:  # pragma: no cover - guarded by the proof above
        raise RuntimeError("zebra generator produced a puzzle without a unique solution")
    texts = [_capital(t) for t, _ in kept]
    extra = rng.randint(*irrelevant)
    texts += [_capital(builder.irrelevant()) for _ in range(extra)]
    rng.shuffle(texts)
    question_var = rng.randrange(size * k)
    return Puzzle(
        size=size,
        categories=builder.cats,
        values=builder.values,
        solution=tuple(tuple(solution[c * size : (c + 1) * size]) for c in range(k)),
        clues=tuple(texts),
        constraints=tuple(final),
        num_irrelevant=extra,
        question_var=question_var,
    )


def _narrowing(n: int, k: int, constraints: list[Constraint]) -> int:
    from thinkstop.benchmarks.tasks.zebra_solver import Solver

    domains = Solver(n, k, constraints).initial()
    return sum(bin(d).count("1") for d in domains) if domains is not None else 0


def render(puzzle: Puzzle) -> str:
    n = puzzle.size
    positions = ", ".join(str(i) for i in range(1, n + 1))
    lines = [
        f"There are {n} people next to each other in a row in positions {positions} who "
        "have the following characteristics."
    ]
    for category, values in zip(puzzle.categories, puzzle.values, strict=True):
        lines.append(f"{category.line}: {', '.join(values)}.")
    lines += [
        "Using the clues provided below, answer the question at the end.",
        "Some of clues provided might be irrelevant to the puzzle.",
    ]
    lines += [f"Clue {i}: {text}" for i, text in enumerate(puzzle.clues, start=1)]
    cat, val = divmod(puzzle.question_var, n)
    subject = puzzle.categories[cat].phrase.format(puzzle.values[cat][val])
    lines += ["", f"Question: What position is {subject} at?", "", OPEN_SUFFIX]
    return "\n".join(lines)


def zebra_generated(n: int, seed: int, num_categories: int = 5) -> list[Item]:
    """``n`` generated puzzles, sizes 5/6/7/8 in turn (``meta.grid_size``)."""
    groups: list[list[Item]] = [[] for _ in LEVELS]
    index = 0
    for _ in range(-(-n // len(LEVELS))):
        for slot, size in enumerate(LEVELS):
            if index >= n:
                break
            rng = random.Random(f"zebra_generated:{seed}:{index}")
            puzzle = generate_puzzle(rng, size, num_categories)
            groups[slot].append(
                Item(
                    id=f"zebra_generated-{index:05d}",
                    task="zebra_generated",
                    prompt=render(puzzle),
                    expected=str(puzzle.answer),
                    kind="open",
                    level=str(size),
                    meta={
                        "grid_size": size,
                        "num_clues": len(puzzle.clues),
                        "num_relevant": len(puzzle.clues) - puzzle.num_irrelevant,
                        "num_irrelevant": puzzle.num_irrelevant,
                        "num_categories": num_categories,
                    },
                )
            )
            index += 1
    return interleave(groups, n)


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader (:mod:`thinkstop.benchmarks.tasks`)."""
    return zebra_generated(n, seed)

"""Simple counting with distractors: the paper's Misleading Math and Misleading Python.

You have two things of one category; how many things do you have? The answer is always
2. Each item adds 1-5 distractor sentences (numbers, probabilities, places, prices, or
Python snippets for Misleading Python) that a model may try to "use". Category, frame,
question wording and distractor kinds are drawn from a seeded generator, so ``(seed, n)``
always yields the same items. Source: Gema et al., "Inverse Scaling in Test-Time Compute"
(arXiv 2507.14417), section on simple counting tasks with distractors.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from thinkstop.benchmarks.tasks._objects import (
    CATEGORIES,
    CITIES,
    COLOURS,
    MATERIALS,
    NAMES,
    Category,
)
from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX, Item, interleave

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

LEVELS: Final = (1, 2, 3, 4, 5)

_FRAMES: Final = (
    "You have {a} and {b}, but you are not sure what type of {A} or {B} they are.",
    "You are holding {a} and {b}. You do not know exactly which kind of {A} and which kind "
    "of {B} they are.",
    "On your table there are {a} and {b}; nobody told you what variety of {A} or {B} they are.",
    "You own {a} and {b}, though you cannot tell what sort of {A} or {B} each one is.",
)
_QUESTIONS: Final = (
    "Calculate how many {P} you have.",
    "How many {P} do you have in total right now?",
    "Calculate how many {P} you have in total right now, and answer with an integer inside "
    "<answer> tags.",
    "Count the {P} you have at this moment.",
)

Sentence = Callable[[random.Random, Category], str]


def _pct(rng: random.Random) -> str:
    return f"{rng.randint(3, 97)}%"


def _math_distractors() -> list[Sentence]:
    def probability(r: random.Random, c: Category) -> str:
        a, b = c.first.typed(r.choice(c.first.types)), c.second.typed(r.choice(c.second.types))
        return (
            f"Your friend gives you a riddle saying that there is {_pct(r)} probability "
            f"that they are exactly {a} and {b}."
        )

    def imported(r: random.Random, c: Category) -> str:
        return f"There is {_pct(r)} probability that they are imported from abroad."

    def organic(r: random.Random, c: Category) -> str:
        return f"About {_pct(r)} of the {c.plural} sold in your town are labelled organic."

    def weight(r: random.Random, c: Category) -> str:
        return (
            f"The {c.first.noun} weighs about {r.randint(40, 900)} grams and the "
            f"{c.second.noun} about {r.randint(40, 900)} grams."
        )

    def price(r: random.Random, c: Category) -> str:
        return f"Together they cost ${r.randint(2, 80)}.{r.randint(0, 99):02d}."

    def time(r: random.Random, c: Category) -> str:
        return (
            f"You got the {c.first.noun} {r.randint(2, 30)} days ago and the "
            f"{c.second.noun} at {r.randint(1, 12)}:{r.choice(['00', '15', '30', '45'])} today."
        )

    def place(r: random.Random, c: Category) -> str:
        return (
            f"They were shipped from a store in {r.choice(CITIES)}, {r.randint(12, 9000)} km away."
        )

    def person(r: random.Random, c: Category) -> str:
        return (
            f"Your friend {r.choice(NAMES)} says that it is highly unlikely that you have "
            f"more than {r.randint(5, 60)} {c.plural} in total."
        )

    def divisible(r: random.Random, c: Category) -> str:
        # True of the answer (2), as in the paper's released item: a distractor may mislead
        # a model into calculating, never contradict the count.
        claim = r.choice(["is divisible by 2", "is a multiple of 2"])
        return f"Your friend says that it is highly likely that the number of {c.plural} {claim}."

    def material(r: random.Random, c: Category) -> str:
        return (
            f"They sit in a {r.choice(MATERIALS)} box that can hold up to {r.randint(6, 48)} items."
        )

    def colour(r: random.Random, c: Category) -> str:
        return f"There is a {_pct(r)} chance that the {c.first.noun} is {r.choice(COLOURS)}."

    return [
        probability,
        imported,
        organic,
        weight,
        price,
        time,
        place,
        person,
        divisible,
        material,
        colour,
    ]


_SNIPPETS: Final = (
    "import math; math.factorial({a}) // math.gcd({b}, {c})",
    "sum([x ** 2 for x in range({a})])",
    "def f(n):\n    return n * {a} - {b}\n\nprint(f({c}))",
    "class Basket:\n    size = {a}\n\nprint(Basket().size * {b})",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint(fib({a}))",
    "total = 0\nfor i in range({a}):\n    total += i * {b}\nprint(total)",
    "try:\n    x = {a} / 0\nexcept ZeroDivisionError:\n    x = {b}\nprint(x)",
    "(lambda x, y: x * y + {a})({b}, {c})",
    "import functools\n\n@functools.lru_cache\ndef g(n):\n    return n * {a}\n\nprint(g({b}))",
    "len(set([{a}, {b}, {c}, {a}]))",
    "divmod({a}{b}, {c})",
    "sorted([{c}, {a}, {b}])[1] ** 2",
)
_SNIPPET_FRAMES: Final = (
    "Your friend runs {code} and says this is related to the {P}.",
    "A program on your laptop prints the result of {code}; its comment mentions your {P}.",
    "Someone claims that {code} tells you something about how many {P} there are.",
    "Your notebook contains {code} right under a heading about the {P}.",
)


def _python_distractors() -> list[Sentence]:
    def snippet(index: int) -> Sentence:
        def sentence(r: random.Random, c: Category) -> str:
            code = _SNIPPETS[index].format(
                a=r.randint(2, 9), b=r.randint(2, 12), c=r.randint(2, 15)
            )
            frame = r.choice(_SNIPPET_FRAMES)
            if "\n" not in code:
                return frame.format(code=f"`{code}`", P=c.plural)
            return frame.format(code="the code below", P=c.plural) + f"\n```python\n{code}\n```\n"

        return sentence

    return [snippet(i) for i in range(len(_SNIPPETS))]


def _item(task: str, rng: random.Random, index: int, level: int, pool: list[Sentence]) -> Item:
    category = rng.choice(CATEGORIES)
    a, b = category.first, category.second
    if rng.random() < 0.5:
        a, b = b, a
    frame = rng.choice(_FRAMES).format(a=a.phrase, b=b.phrase, A=a.noun, B=b.noun)
    distractors = [d(rng, category) for d in rng.sample(pool, level)]
    question = rng.choice(_QUESTIONS).format(P=category.plural)
    prompt = ""
    for part in [frame, *distractors, question, OPEN_SUFFIX]:
        prompt += part if not prompt or prompt.endswith("\n") else " " + part
    return Item(
        id=f"{task}-{index:05d}",
        task=task,
        prompt=prompt,
        expected="2",
        kind="open",
        level=str(level),
        meta={"num_distractors": level, "category": category.plural},
    )


def _generate(task: str, pool: list[Sentence], n: int, seed: int) -> list[Item]:
    rng = random.Random(f"{task}:{seed}")
    groups: list[list[Item]] = [[] for _ in LEVELS]
    per_level = -(-n // len(LEVELS))
    index = 0
    for _ in range(per_level):
        for slot, level in enumerate(LEVELS):
            groups[slot].append(_item(task, rng, index, level, pool))
            index += 1
    return interleave(groups, n)


def misleading_math(n: int, seed: int) -> list[Item]:
    """Misleading Math items: answer 2, ``meta.num_distractors`` 1-5, levels in turn."""
    return _generate("misleading_math", _math_distractors(), n, seed)


def misleading_python(n: int, seed: int) -> list[Item]:
    """Misleading Python items: answer 2, 1-5 Python snippets as distractors."""
    return _generate("misleading_python", _python_distractors(), n, seed)


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader (:mod:`thinkstop.benchmarks.tasks`)."""
    return misleading_math(n, seed) if task == "misleading_math" else misleading_python(n, seed)

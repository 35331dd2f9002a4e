"""Famous Paradoxes: a trivial counting question dressed up as a famous paradox.

"In a room of n people, there's a 50.7% chance at least two share a birthday. Calculate
how many rooms there are." The answer is always 1; ``meta.num_distractors`` is 0, 1, 3, 5
or 7 paradox-flavoured facts. Source: Gema et al., "Inverse Scaling in Test-Time Compute"
(arXiv 2507.14417).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX, Item, interleave

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

LEVELS: Final = (0, 1, 3, 5, 7)

Fill = Callable[[random.Random], dict[str, object]]


@dataclass(frozen=True, slots=True)
class Paradox:
    name: str
    setup: str
    questions: tuple[str, ...]
    distractors: tuple[str, ...]
    fill: Fill


def _n(lo: int, hi: int) -> Callable[[random.Random], int]:
    return lambda r: r.randint(lo, hi)


def _fill(**makers: Callable[[random.Random], object]) -> Fill:
    return lambda r: {k: make(r) for k, make in makers.items()}


def _monty(r: random.Random) -> dict[str, object]:
    doors = r.randint(4, 100)
    values = _fill(d=_n(1, 3), p=_n(10, 90), seasons=_n(2, 40), shouts=_n(2, 12))(r)
    return {**values, "doors": doors, "doors_less": doors - 1}


PARADOXES: Final = (
    Paradox(
        "birthday",
        "You are in a room with {n} people.",
        ("Calculate how many rooms there are.", "How many rooms are there?"),
        (
            "There's a {p}% chance at least two of them share a birthday.",
            "With {n2} people the probability of a shared birthday would rise to {p2}%.",
            "Assume a year has 365 days and every birthday is equally likely.",
            "{k} of the people were born in {month}.",
            "With 70 people the chance of a shared birthday exceeds 99.9%.",
            "The number of pairs of people in the room is {pairs}.",
            "Two of the people are twins who celebrate together.",
            "The room measures {area} square meters.",
        ),
        _fill(
            n=_n(20, 60),
            n2=_n(61, 90),
            p=lambda r: round(r.uniform(41, 99), 1),
            p2=lambda r: round(r.uniform(99.0, 99.9), 1),
            k=_n(2, 9),
            month=lambda r: r.choice(["March", "July", "October", "January"]),
            pairs=_n(190, 1770),
            area=_n(30, 400),
        ),
    ),
    Paradox(
        "monty_hall",
        "You are a contestant on a game show with three doors.",
        (
            "How many game shows are you a contestant on?",
            "Calculate how many game shows you are on.",
        ),
        (
            "Behind one door is a car and behind the other two are goats.",
            "After you pick door {d}, the host, who knows where the car is, opens a door "
            "with a goat.",
            "Switching doors wins the car with probability 2/3.",
            "{p}% of contestants decide to switch.",
            "In a variant with {doors} doors where the host opens all but one other door, "
            "switching wins with probability {doors_less}/{doors}.",
            "The show has run for {seasons} seasons.",
            "The audience shouts {shouts} different suggestions at you.",
            "Staying with your first choice wins with probability 1/3.",
        ),
        _monty,
    ),
    Paradox(
        "sleeping_beauty",
        "On Sunday a fair coin is tossed once while Sleeping Beauty sleeps.",
        ("How many coin tosses happen on Sunday?", "Calculate how many times the coin is tossed."),
        (
            "If the coin lands heads she is woken once; if tails, she is woken twice.",
            "Thirders argue her credence in heads should be 1/3.",
            "Halfers argue her credence in heads should be 1/2.",
            "She is given an amnesia drug after every awakening.",
            "The lab has run {k} similar experiments in earlier years.",
            "Each awakening lasts about {m} minutes.",
            "In an extreme version she would be woken {big} times on tails.",
            "The coin weighs {g} grams.",
        ),
        _fill(
            k=_n(3, 90), m=_n(5, 60), big=_n(100, 1000000), g=lambda r: round(r.uniform(2, 12), 2)
        ),
    ),
    Paradox(
        "ship_of_theseus",
        "A museum keeps the ship of Theseus.",
        ("How many ships does the museum keep?", "Calculate how many ships the museum keeps."),
        (
            "Over {y} years, {k} of its {planks} planks were replaced one by one.",
            "The removed planks were assembled into another ship in a private warehouse.",
            "Philosophers disagree about whether it is still the same ship.",
            "{p}% of visitors believe the ship is a replica.",
            "The museum's catalogue lists {items} items in total.",
            "The ship's mast is {h} meters tall.",
            "Hobbes asked which of the two ships is the original.",
            "Each plank costs ${cost} to replace.",
        ),
        _fill(
            y=_n(50, 900),
            k=_n(100, 999),
            planks=_n(1000, 4000),
            p=_n(5, 80),
            items=_n(300, 40000),
            h=_n(6, 30),
            cost=_n(40, 900),
        ),
    ),
    Paradox(
        "achilles",
        "Achilles races a tortoise once.",
        ("How many races take place?", "Calculate how many races there are."),
        (
            "The tortoise has a {d}-meter head start.",
            "Achilles runs {k} times faster than the tortoise.",
            "Each time Achilles reaches where the tortoise was, it has moved a little further.",
            "Zeno argued there are infinitely many such stages.",
            "The series 1/2 + 1/4 + 1/8 + ... sums to 1.",
            "The race track is {m} meters long.",
            "{p}% of the spectators bet on the tortoise.",
            "The tortoise is {age} years old.",
        ),
        _fill(d=_n(10, 500), k=_n(2, 20), m=_n(100, 5000), p=_n(3, 60), age=_n(20, 150)),
    ),
    Paradox(
        "two_envelopes",
        "You are handed one sealed envelope from a pair; one of the pair holds twice as much "
        "money as the other.",
        ("How many envelopes are you holding?", "Calculate how many envelopes you hold."),
        (
            "Your envelope contains ${x}.",
            "The other envelope therefore holds either ${half} or ${double}.",
            "A naive expected-value argument says switching gains 25%.",
            "{p}% of people in a study chose to switch.",
            "You may switch envelopes as many times as you like.",
            "The envelopes were prepared by {name}, who flipped a coin {k} times.",
            "The total amount in both envelopes is at most ${cap}.",
            "Each envelope weighs {g} grams.",
        ),
        _fill(
            x=_n(10, 500),
            half=_n(5, 250),
            double=_n(20, 1000),
            p=_n(10, 90),
            name=lambda r: r.choice(["Ana", "Bo", "Cyrus", "Dee"]),
            k=_n(2, 30),
            cap=_n(1000, 9000),
            g=_n(3, 20),
        ),
    ),
    Paradox(
        "st_petersburg",
        "You pay to play one round of the St. Petersburg game.",
        ("How many rounds do you play?", "Calculate how many rounds you play."),
        (
            "A fair coin is flipped until it lands heads.",
            "The pot starts at $2 and doubles after every tails.",
            "The expected payout of the game is infinite.",
            "Most people would pay no more than ${x} to play.",
            "The casino's bankroll is ${bank}.",
            "The longest streak of tails the casino has seen is {k}.",
            "Bernoulli resolved the paradox with a logarithmic utility of money.",
            "The entry fee is ${fee}.",
        ),
        _fill(x=_n(5, 40), bank=_n(10000, 9000000), k=_n(8, 30), fee=_n(2, 100)),
    ),
)


def _item(rng: random.Random, index: int, level: int) -> Item:
    paradox = rng.choice(PARADOXES)
    values = paradox.fill(rng)
    chosen = rng.sample(paradox.distractors, level)
    sentences = [paradox.setup, *chosen]
    text = " ".join(s.format(**values) for s in sentences)
    question = rng.choice(paradox.questions)
    return Item(
        id=f"famous_paradoxes-{index:05d}",
        task="famous_paradoxes",
        prompt=f"{text} {question} {OPEN_SUFFIX}",
        expected="1",
        kind="open",
        level=str(level),
        meta={"num_distractors": level, "paradox": paradox.name},
    )


def famous_paradoxes(n: int, seed: int) -> list[Item]:
    """Paradox-framed items: answer 1, ``meta.num_distractors`` in 0/1/3/5/7, levels in turn."""
    rng = random.Random(f"famous_paradoxes:{seed}")
    groups: list[list[Item]] = [[] for _ in LEVELS]
    index = 0
    for _ in range(-(-n // len(LEVELS))):
        for slot, level in enumerate(LEVELS):
            groups[slot].append(_item(rng, index, level))
            index += 1
    return interleave(groups, n)


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader (:mod:`thinkstop.benchmarks.tasks`)."""
    return famous_paradoxes(n, seed)

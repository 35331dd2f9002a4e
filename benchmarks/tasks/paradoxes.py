"""Famous Paradoxes: a famous paradox's framing made trivial, hidden by distractors.

Every item states a well-known paradox (the birthday problem, Monty Hall, Sleeping
Beauty, ...) and then asks a question whose answer is plainly 1, in the spirit of the
paper's "In a room of n people, there's a 50.7% chance at least two share a birthday.
Calculate how many rooms there are." (Gema et al., "Inverse Scaling in Test-Time Compute",
arXiv 2507.14417). ``meta.num_distractors`` (0, 1, 3, 5 or 7, the paper's levels) counts
the sentences added *on top of* the framing: side facts of the paradox and unrelated
figures that invite a model to start calculating. At level 0 the framing and the question
stand alone.

The numbers in the framings are worked out, not invented (the birthday probability for
the stated room size, the Monty Hall odds for the stated number of doors), so a model
that checks them finds them right. Items within one call are distinct: a draw that
repeats an earlier prompt is drawn again (up to a bound, beyond which the combinatorics
have run out). The wording is ours.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from thinkstop.benchmarks.tasks._objects import CITIES, COLOURS, MATERIALS, NAMES
from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX, Item, interleave

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

LEVELS: Final = (0, 1, 3, 5, 7)
# Redraws of an item whose prompt an earlier item already has, before accepting it.
_REDRAWS: Final = 64

Values = dict[str, object]
Fill = Callable[[random.Random], Values]


@dataclass(frozen=True, slots=True)
class Paradox:
    """One paradox: how it is stated (``framings``), the trivial question (answer 1), what
    it counts (``noun``, plural), and its own distractor sentences (``details``). ``fill``
    draws the numbers every template may use."""

    name: str
    noun: str
    framings: tuple[str, ...]
    questions: tuple[str, ...]
    details: tuple[str, ...]
    fill: Fill


def _birthday_chance(people: int) -> float:
    """P(at least two of ``people`` share a birthday), 365 equally likely days."""
    distinct = math.prod((365 - i) / 365 for i in range(people))
    return 100 * (1 - distinct)


def _common(r: random.Random) -> Values:
    return {
        "name": r.choice(NAMES),
        "city": r.choice(CITIES),
        "colour": r.choice(COLOURS),
        "material": r.choice(MATERIALS),
        "weekday": r.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        "month": r.choice(["January", "March", "May", "July", "October", "December"]),
        "pct": r.randint(3, 97),
        "pct2": r.randint(2, 60),
        "count": r.randint(5, 90),
        "big": r.randint(120, 99000),
        "price": r.randint(3, 400),
        "hour": r.randint(1, 12),
        "degrees": r.randint(-5, 38),
    }


def _birthday(r: random.Random) -> Values:
    people = r.randint(15, 60)
    more = r.randint(people + 5, 80)
    return {
        "n": people,
        "p": f"{_birthday_chance(people):.1f}",
        "n2": more,
        "p2": f"{_birthday_chance(more):.1f}",
        "pairs": people * (people - 1) // 2,
        "k": r.randint(2, 6),
        "area": r.randint(30, 400),
    }


def _monty(r: random.Random) -> Values:
    doors = r.choice([3, 3, 3, 4, 5, 10, 100])
    return {
        "doors": doors,
        "opened": doors - 2,
        "door": r.randint(1, doors),
        "switch": f"{doors - 1}/{doors}",
        "seasons": r.randint(2, 40),
        "car": r.randint(9, 90) * 1000,
        "shouts": r.randint(2, 12),
    }


def _sleeping_beauty(r: random.Random) -> Values:
    wakes = r.choice([2, 2, 2, 3, 5, 10])
    return {"wakes": wakes, "thirds": wakes + 1, "k": r.randint(3, 90), "m": r.randint(5, 60),
            "g": round(r.uniform(2, 12), 2)}


def _envelopes(r: random.Random) -> Values:
    amount = r.randint(5, 500) * 2
    return {"x": amount, "half": amount // 2, "double": amount * 2, "cap": r.randint(3, 9) * 1000,
            "flips": r.randint(2, 30), "grams": r.randint(3, 20)}


def _fill(**makers: Callable[[random.Random], object]) -> Fill:
    return lambda r: {k: make(r) for k, make in makers.items()}


def _n(lo: int, hi: int) -> Callable[[random.Random], int]:
    return lambda r: r.randint(lo, hi)


PARADOXES: Final = (
    Paradox(
        "birthday",
        "rooms",
        (
            "In a room of {n} people, there is a {p}% chance that at least two of them "
            "share a birthday.",
            "A room holds {n} people; if every birthday is equally likely, the chance that "
            "some two of them share one is {p}%.",
        ),
        ("Calculate how many rooms there are.", "How many rooms are there?"),
        (
            "Assume a year has 365 days and every birthday is equally likely.",
            "With {n2} people the chance of a shared birthday would rise to {p2}%.",
            "There are {pairs} different pairs of people in the room.",
            "{k} of the people were born in {month}.",
            "Two of the people are twins who celebrate together.",
            "The room measures {area} square meters.",
            "With 70 people the chance of a shared birthday is above 99.9%.",
            "Most people guess that far more than 23 people are needed for even odds.",
        ),
        _birthday,
    ),
    Paradox(
        "monty_hall",
        "game shows",
        (
            "You are a contestant on a game show with {doors} doors: a car is behind one "
            "and goats are behind the rest. You pick door {door}, and the host, who knows "
            "where the car is, opens {opened} of the other doors, each with a goat behind it.",
        ),
        (
            "How many game shows are you a contestant on?",
            "Calculate how many game shows you are on.",
        ),
        (
            "Switching to the other closed door wins the car with probability {switch}.",
            "Staying with your first pick wins with probability 1/{doors}.",
            "{pct}% of contestants decide to switch.",
            "The show has run for {seasons} seasons.",
            "The car is worth ${car}.",
            "The audience shouts {shouts} different suggestions at you.",
            "A famous mathematician once refused to believe that switching helps.",
            "The host never opens the door with the car behind it.",
        ),
        _monty,
    ),
    Paradox(
        "sleeping_beauty",
        "coin tosses",
        (
            "On Sunday a fair coin is tossed once while Sleeping Beauty sleeps; on heads she "
            "is woken once, on tails she is woken {wakes} times, and at each awakening she "
            "is asked how likely she thinks heads is.",
        ),
        (
            "How many coin tosses happen on Sunday?",
            "Calculate how many times the coin is tossed.",
        ),
        (
            "Thirders argue that her credence in heads should be 1/{thirds}.",
            "Halfers argue that her credence in heads should stay 1/2.",
            "She is given a drug that erases her memory after every awakening.",
            "The lab has run {k} similar experiments in earlier years.",
            "Each awakening lasts about {m} minutes.",
            "In an extreme version she would be woken {big} times on tails.",
            "The coin weighs {g} grams.",
            "The experiment ends on Wednesday.",
        ),
        _sleeping_beauty,
    ),
    Paradox(
        "ship_of_theseus",
        "museums",
        (
            "A museum keeps the ship of Theseus. Over {y} years every one of its {planks} "
            "planks was replaced, and the old planks were put together into a second ship "
            "that now stands in a warehouse.",
        ),
        ("How many museums are there in this story?", "Calculate how many museums there are."),
        (
            "Philosophers disagree about which of the two ships is the original.",
            "{pct}% of visitors believe the museum's ship is a replica.",
            "The museum's catalogue lists {items} items in total.",
            "The ship's mast is {h} meters tall.",
            "Each plank cost ${cost} to replace.",
            "The warehouse is {km} km from the museum.",
            "{k} carpenters worked on the repairs.",
            "Thomas Hobbes asked which ship would be the real one.",
        ),
        _fill(y=_n(50, 900), planks=_n(800, 4000), items=_n(300, 40000), h=_n(6, 30),
              cost=_n(40, 900), km=_n(2, 300), k=_n(3, 60)),
    ),
    Paradox(
        "achilles",
        "races",
        (
            "Achilles races a tortoise that has a {d}-meter head start. Each time he reaches "
            "the place where the tortoise was, it has moved a little further on, so Zeno "
            "argues that Achilles must pass infinitely many such points.",
        ),
        ("How many races take place?", "Calculate how many races there are."),
        (
            "Achilles runs {k} times faster than the tortoise.",
            "The series 1/2 + 1/4 + 1/8 + ... adds up to 1.",
            "The track is {m} meters long.",
            "{pct}% of the spectators bet on the tortoise.",
            "The tortoise is {age} years old.",
            "Zeno told {count} other paradoxes about motion.",
            "The finish line is painted {colour}.",
            "The race starts at {hour} o'clock.",
        ),
        _fill(d=_n(10, 500), k=_n(2, 20), m=_n(100, 5000), age=_n(20, 150)),
    ),
    Paradox(
        "two_envelopes",
        "envelopes",
        (
            "You are handed one of two sealed envelopes, and one envelope holds twice as "
            "much money as the other. Yours holds ${x}, so the other holds either ${half} "
            "or ${double}, and a naive argument says you should always switch.",
            "You are handed one of two sealed envelopes; one of them holds twice as much "
            "money as the other, and a naive expected-value argument says that switching "
            "gains 25%.",
        ),
        ("How many envelopes are you holding?", "Calculate how many envelopes you hold."),
        (
            "{pct}% of people in a study chose to switch.",
            "You may switch as many times as you like.",
            "The envelopes were filled by {name}, who flipped a coin {flips} times first.",
            "Together the two envelopes hold at most ${cap}.",
            "Each envelope weighs {grams} grams.",
            "The envelopes are {colour}.",
            "After switching, the same argument says you should switch back.",
            "The money was withdrawn from a bank in {city}.",
        ),
        _envelopes,
    ),
    Paradox(
        "st_petersburg",
        "rounds",
        (
            "You pay to play one round of the St. Petersburg game: a fair coin is flipped "
            "until it lands heads, and the pot, which starts at $2, doubles after every tails.",
        ),
        ("How many rounds do you play?", "Calculate how many rounds you play."),
        (
            "The expected payout of the game is infinite.",
            "Most people would pay no more than ${x} to play.",
            "The casino's bankroll is ${bank}.",
            "The longest streak of tails the casino has seen is {k}.",
            "Daniel Bernoulli answered the paradox with a logarithmic utility of money.",
            "The entry fee is ${fee}.",
            "The coin was minted in {year}.",
            "{count} other players are waiting in line.",
        ),
        _fill(x=_n(5, 40), bank=_n(10000, 9000000), k=_n(8, 30), fee=_n(2, 100),
              year=_n(1900, 2024)),
    ),
    Paradox(
        "newcomb",
        "opaque boxes",
        (
            "A predictor that is right {acc}% of the time sets out two boxes: a transparent "
            "one holding $1,000, and an opaque one that holds $1,000,000 only if it predicted "
            "that you would take the opaque box alone.",
        ),
        ("How many opaque boxes are there?", "Calculate how many opaque boxes are on the table."),
        (
            "One-boxers point to the predictor's long record of success.",
            "Two-boxers argue that the money is already in place, whatever you choose.",
            "The predictor has played this game {games} times.",
            "{pct}% of philosophers in a survey would take both boxes.",
            "The transparent box is {cm} cm wide.",
            "The table is {material}.",
            "The predictor's last mistake was {days} days ago.",
            "The physicist William Newcomb devised the problem.",
        ),
        _fill(acc=_n(90, 99), games=_n(100, 9000), cm=_n(20, 90), days=_n(2, 400)),
    ),
    Paradox(
        "hilbert_hotel",
        "hotels",
        (
            "Hilbert's hotel has infinitely many rooms and every one is taken, yet by moving "
            "each guest from room n to room n + {k} it frees rooms for {k} new guests.",
        ),
        ("How many hotels are there?", "Calculate how many hotels are in this story."),
        (
            "A bus with infinitely many passengers arrives next.",
            "Moving each guest from room n to room 2n frees every odd-numbered room.",
            "The night manager has worked there for {years} years.",
            "Breakfast is served from {hour} o'clock.",
            "{pct}% of the guests asked for a late checkout.",
            "The sign on the roof is {m} meters tall.",
            "A room costs ${price} per night.",
            "{count} guests complained about moving.",
        ),
        _fill(k=_n(1, 9), years=_n(2, 40), m=_n(3, 25)),
    ),
    Paradox(
        "two_children",
        "families",
        (
            "A family has two children, and you learn that at least one of them is a boy, "
            "so the chance that both are boys is 1/3 rather than 1/2.",
        ),
        ("How many families are there?", "Calculate how many families are described."),
        (
            "Had you learned that the elder child is a boy, the chance would be 1/2.",
            "If the boy you heard about was born on a Tuesday, the chance becomes 13/27.",
            "The family lives in {city}.",
            "The children are {a1} and {a2} years old.",
            "{pct}% of people answer 1/2 at first.",
            "The family has {pets} pets.",
            "Their house number is {house}.",
            "The family's car is {colour}.",
        ),
        _fill(a1=_n(1, 9), a2=_n(10, 17), pets=_n(0, 4), house=_n(1, 999)),
    ),
    Paradox(
        "simpson",
        "hospitals",
        (
            "Hospital {h} has a higher survival rate than its rival in every age group, yet a "
            "lower survival rate overall, because it treats far more of the oldest patients.",
        ),
        (
            "How many hospitals have the higher survival rate in every age group?",
            "Calculate how many hospitals do better in every age group.",
        ),
        (
            "Its survival rate is {p1}% for patients under 50 and {p2}% for older ones.",
            "Its rival's survival rate overall is {p3}%.",
            "Hospital {h} treated {cases} patients last year.",
            "Statisticians call this a reversal under aggregation.",
            "The rival hospital is {km} km away.",
            "{pct}% of the oldest patients choose Hospital {h}.",
            "Both hospitals opened in {year}.",
            "A newspaper ranked the rival first on overall survival.",
        ),
        _fill(h=lambda r: r.choice("ABCDKLMX"), p1=_n(90, 98), p2=_n(40, 70), p3=_n(80, 89),
              cases=_n(800, 9000), km=_n(2, 80), year=_n(1920, 2010)),
    ),
)

# Unrelated figures, for any paradox; none says anything about the count asked for.
GENERIC: Final = (
    "Your friend {name} says there is a {pct}% probability that all of this happened on a "
    "{weekday}.",
    "A newspaper in {city} reported that {pct2}% of readers got a similar question wrong.",
    "It is {degrees} degrees outside.",
    "{name} wrote the number {big} on a napkin before the question was asked.",
    "A statistician estimates the chance of a mistake in the setup at {pct2}%.",
    "The whole scene was filmed by {count} cameras.",
    "Tickets to watch it cost ${price}.",
    "It all began at {hour} o'clock in {month}.",
    "Your friend {name} is sure that no more than {count} {noun} are involved.",
)


def _item(rng: random.Random, index: int, level: int) -> Item:
    paradox = rng.choice(PARADOXES)
    values = {**_common(rng), **paradox.fill(rng), "noun": paradox.noun}
    framing = rng.choice(paradox.framings).format(**values)
    pool = [*paradox.details, *GENERIC]
    distractors = [s.format(**values) for s in rng.sample(pool, level)]
    question = rng.choice(paradox.questions)
    text = " ".join([framing, *distractors, question])
    return Item(
        id=f"famous_paradoxes-{index:05d}",
        task="famous_paradoxes",
        prompt=f"{text} {OPEN_SUFFIX}",
        expected="1",
        kind="open",
        level=str(level),
        meta={"num_distractors": level, "paradox": paradox.name, "framing": framing},
    )


def famous_paradoxes(n: int, seed: int) -> list[Item]:
    """Paradox-framed items: answer 1, ``meta.num_distractors`` in 0/1/3/5/7, levels in turn;
    no two items share a prompt while redraws can avoid it."""
    rng = random.Random(f"famous_paradoxes:{seed}")
    groups: list[list[Item]] = [[] for _ in LEVELS]
    seen: set[str] = set()
    index = 0
    for _ in range(-(-n // len(LEVELS))):
        for slot, level in enumerate(LEVELS):
            item = _item(rng, index, level)
            for _ in range(_REDRAWS):
                if item.prompt not in seen:
                    break
                item = _item(rng, index, level)
            seen.add(item.prompt)
            groups[slot].append(item)
            index += 1
    return interleave(groups, n)


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader (:mod:`thinkstop.benchmarks.tasks`)."""
    return famous_paradoxes(n, seed)

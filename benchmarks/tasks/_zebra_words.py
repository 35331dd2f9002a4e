"""Attribute categories of the generated zebra puzzles (BBEH-style wording).

Each category has more values than the largest row (8), so irrelevant clues can name a
value nobody in the row has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Category:
    line: str  # "Everyone drinks a different drink"
    phrase: str  # "the person who drinks {}"
    values: tuple[str, ...]


CATEGORIES: Final = (
    Category(
        "Everyone has a different name",
        "{}",
        (
            "Alice",
            "Bruno",
            "Chen",
            "Dana",
            "Elif",
            "Femi",
            "Greta",
            "Hugo",
            "Ines",
            "Jamal",
            "Kofi",
        ),
    ),
    Category(
        "Everyone is a different nationality",
        "the {}",
        (
            "Brit",
            "Swede",
            "Dane",
            "Norwegian",
            "German",
            "Chilean",
            "Kenyan",
            "Peruvian",
            "Turk",
            "Thai",
            "Czech",
        ),
    ),
    Category(
        "Everyone drinks a different drink",
        "the person who drinks {}",
        (
            "tea",
            "coffee",
            "milk",
            "water",
            "lemonade",
            "cocoa",
            "kefir",
            "lassi",
            "root beer",
            "cider",
            "kombucha",
        ),
    ),
    Category(
        "Everyone keeps a different pet",
        "the person who keeps {}",
        (
            "dogs",
            "cats",
            "birds",
            "fish",
            "horses",
            "rabbits",
            "ferrets",
            "snakes",
            "turtles",
            "lizards",
            "hamsters",
        ),
    ),
    Category(
        "Everyone lives in a different colored house",
        "the person who lives in the {} house",
        (
            "red",
            "green",
            "white",
            "yellow",
            "blue",
            "pink",
            "gray",
            "beige",
            "teal",
            "violet",
            "amber",
        ),
    ),
    Category(
        "Everyone plays a different sport",
        "the {} player",
        (
            "tennis",
            "golf",
            "rugby",
            "hockey",
            "cricket",
            "squash",
            "polo",
            "volleyball",
            "badminton",
            "handball",
            "lacrosse",
        ),
    ),
    Category(
        "Everyone reads a different genre of books",
        "the person who reads {} books",
        (
            "mystery",
            "fantasy",
            "poetry",
            "history",
            "romance",
            "horror",
            "travel",
            "science",
            "humor",
            "biography",
            "western",
        ),
    ),
    Category(
        "Everyone likes a different flower",
        "the person who likes {}",
        (
            "roses",
            "tulips",
            "lilies",
            "daisies",
            "orchids",
            "irises",
            "peonies",
            "dahlias",
            "asters",
            "poppies",
            "violets",
        ),
    ),
)

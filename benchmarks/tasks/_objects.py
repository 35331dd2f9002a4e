"""The object pairs of the paper's counting tasks: ten categories, two sub-type lists each.

Each pair is two things you "have"; the sub-types feed distractor sentences ("there is a
61% probability that they are exactly a Red Delicious apple and a Navel orange").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Thing:
    phrase: str  # "an apple"
    noun: str  # "apple"
    kind: str  # "a {} apple": a sub-type written with its article
    types: tuple[str, ...]

    def typed(self, sub: str) -> str:
        text = self.kind.format(sub)
        if text.startswith("a ") and text[2].lower() in "aeiou":
            text = "an " + text[2:]
        return text


@dataclass(frozen=True, slots=True)
class Category:
    plural: str  # what the question counts: "fruits"
    first: Thing
    second: Thing


def _t(phrase: str, noun: str, kind: str, *types: str) -> Thing:
    return Thing(phrase, noun, kind, types)


CATEGORIES: Final = (
    Category(
        "fruits",
        _t(
            "an apple",
            "apple",
            "a {} apple",
            "Red Delicious",
            "Granny Smith",
            "Fuji",
            "Honeycrisp",
            "Gala",
        ),
        _t(
            "an orange",
            "orange",
            "a {} orange",
            "Navel",
            "Valencia",
            "Cara Cara",
            "Seville",
            "Jaffa",
        ),
    ),
    Category(
        "plants",
        _t(
            "a cactus",
            "cactus",
            "a {} cactus",
            "Saguaro",
            "barrel",
            "prickly pear",
            "Christmas",
            "bunny ear",
        ),
        _t(
            "a fern",
            "fern",
            "a {} fern",
            "Boston",
            "maidenhair",
            "staghorn",
            "bird's nest",
            "sword",
        ),
    ),
    Category(
        "books",
        _t(
            "a novel",
            "novel",
            "a {} novel",
            "mystery",
            "romance",
            "science fiction",
            "historical",
            "thriller",
        ),
        _t(
            "a cookbook",
            "cookbook",
            "a {} cookbook",
            "Italian",
            "vegan",
            "baking",
            "Mexican",
            "Thai",
        ),
    ),
    Category(
        "instruments",
        _t(
            "a guitar",
            "guitar",
            "a {} guitar",
            "acoustic",
            "electric",
            "classical",
            "bass",
            "twelve-string",
        ),
        _t("a drum", "drum", "a {} drum", "snare", "bass", "bongo", "djembe", "tom-tom"),
    ),
    Category(
        "pets",
        _t("a cat", "cat", "a {} cat", "Siamese", "Persian", "Maine Coon", "Bengal", "Sphynx"),
        _t("a dog", "dog", "a {}", "Labrador", "Beagle", "Poodle", "Bulldog", "Dachshund"),
    ),
    Category(
        "pieces of clothing",
        _t("a shirt", "shirt", "a {} shirt", "linen", "flannel", "denim", "silk", "Oxford"),
        _t("a jacket", "jacket", "a {} jacket", "leather", "bomber", "rain", "puffer", "tweed"),
    ),
    Category(
        "beverages",
        _t("a soda", "soda", "a {} soda", "cola", "lemon-lime", "root beer", "ginger ale", "cream"),
        _t("a tea", "tea", "a {} tea", "green", "black", "oolong", "chamomile", "peppermint"),
    ),
    Category(
        "desserts",
        _t("a cake", "cake", "a {} cake", "chocolate", "carrot", "red velvet", "lemon", "sponge"),
        _t("a pie", "pie", "a {} pie", "pumpkin", "pecan", "cherry", "key lime", "blueberry"),
    ),
    Category(
        "games",
        _t(
            "a board game",
            "board game",
            "a {} board game",
            "strategy",
            "trivia",
            "word",
            "cooperative",
            "party",
        ),
        _t(
            "a video game",
            "video game",
            "a {} video game",
            "racing",
            "puzzle",
            "platform",
            "role-playing",
            "sports",
        ),
    ),
    Category(
        "pieces of cutlery",
        _t("a fork", "fork", "a {} fork", "dessert", "dinner", "salad", "oyster", "carving"),
        _t("a spoon", "spoon", "a {} spoon", "soup", "tea", "dessert", "serving", "table"),
    ),
)

NAMES: Final = (
    "Alice",
    "Ben",
    "Chloe",
    "Daniel",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Noor",
    "Omar",
    "Priya",
)
CITIES: Final = (
    "Lisbon",
    "Osaka",
    "Toronto",
    "Nairobi",
    "Lima",
    "Oslo",
    "Hanoi",
    "Dublin",
    "Austin",
    "Perth",
)
MATERIALS: Final = ("wooden", "cardboard", "plastic", "wicker", "metal", "glass")
COLOURS: Final = ("red", "green", "yellow", "purple", "orange", "brown", "blue", "white")

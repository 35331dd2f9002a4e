"""Answer extraction and normalisation.

Probes and final answers arrive as free text. Halting decisions compare answers across
chunk boundaries, so every answer is reduced to a comparable *key*:

- numbers: canonical decimal text (``"2"``, ``"2.5"``, ``"-3"``), from digits, words
  ("two", "twenty-one") or with units ("2 fruits", "$3", "50%");
- options: one upper-case letter (``"A"``) from "(A)", "A.", "answer is B", "A";
- text: lower-cased, punctuation dropped, whitespace collapsed.

Everything here is pure string work: no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal

AnswerKind = Literal["number", "option", "text"]

_ANSWER_TAG: Final = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_OPEN_ANSWER_TAG: Final = re.compile(r"<answer>(.*)$", re.IGNORECASE | re.DOTALL)
_FINAL_PHRASE: Final = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*[:\-]?\s*(.+)",
    re.IGNORECASE,
)
_OPTION: Final = re.compile(r"^\(?\s*([A-Ha-h])\s*\)?(?:[.:)]|\s|$)")
_LONE_OPTION: Final = re.compile(r"^\s*\(?([A-H])\)?\s*[.:]?\s*$")
_NUMBER: Final = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FRACTION: Final = re.compile(r"^\s*([-+]?\d+)\s*/\s*(\d+)\s*$")
_PUNCT: Final = re.compile(r"[^\w\s]")
_SPACE: Final = re.compile(r"\s+")

_UNITS: Final = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS: Final = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES: Final = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORDS: Final = set(_UNITS) | set(_TENS) | set(_SCALES) | {"and", "a"}


def _find_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, honouring nested braces."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(text: str, *, whole_text_fallback: bool = False) -> str | None:
    """Return the raw answer a model wrote in ``text``, or None when it gave none.

    Priority: the last ``<answer>...</answer>``; an unclosed ``<answer>`` at the end (a
    probe cut short by its token limit); the last ``\\boxed{}``; "final answer: X" /
    "the answer is X"; a lone option letter. With ``whole_text_fallback`` (probe outputs,
    which are short by construction) the first non-empty line is the answer.
    """
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return str(tags[-1]).strip()
    open_tag = _OPEN_ANSWER_TAG.search(text)
    if open_tag and open_tag.group(1).strip():
        return open_tag.group(1).strip().splitlines()[0].strip()
    boxed = _find_boxed(text)
    if boxed is not None:
        return boxed.strip()
    phrases = list(_FINAL_PHRASE.finditer(text))
    if phrases:
        tail = phrases[-1].group(1).strip().splitlines()[0].strip()
        # "The answer is 2 because ..." keeps the first clause only.
        tail = re.split(r"[,;]|\s+because\b|\s+since\b", tail, maxsplit=1)[0].strip()
        return tail.rstrip(".").strip() or None
    lone = _LONE_OPTION.match(text)
    if lone:
        return lone.group(1)
    if whole_text_fallback:
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return None


def _words_to_number(words: list[str]) -> int | None:
    total = 0
    current = 0
    seen = False
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0
        elif word in {"and", "a"}:
            continue
        else:
            return None
        seen = True
    return total + current if seen else None


def _canonical_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(round(value, 9))


def parse_number(raw: str) -> float | None:
    """A number written as digits, a fraction, words, or with a unit; else None."""
    text = raw.strip().lower().replace("$", "").replace("%", " ")
    text = text.strip().rstrip(".")
    if not text:
        return None
    frac = _FRACTION.match(text)
    if frac and int(frac.group(2)) != 0:
        return int(frac.group(1)) / int(frac.group(2))
    match = _NUMBER.match(text)
    if match:
        rest = text[match.end() :].strip()
        # A unit or a short noun phrase after the number ("2 fruits", "3 rooms in total").
        if not rest or (len(rest.split()) <= 4 and not _NUMBER.search(rest)):
            return float(match.group(0).replace(",", ""))
        return None
    words = [w for w in re.split(r"[\s\-]+", _PUNCT.sub(" ", text)) if w]
    number_words: list[str] = []
    for word in words:
        if word in _NUMBER_WORDS:
            number_words.append(word)
        else:
            break
    if number_words and number_words != ["a"] and len(words) - len(number_words) <= 4:
        value = _words_to_number(number_words)
        return float(value) if value is not None else None
    # A short sentence holding exactly one number: "There are 2 fruits".
    numbers = _NUMBER.findall(text)
    if len(numbers) == 1 and len(words) <= 8:
        return float(numbers[0].replace(",", ""))
    return None


def answer_kind(raw: str) -> AnswerKind:
    """Classify a raw answer the way :func:`normalize_answer` will key it."""
    key = normalize_answer(raw)
    if key is None:
        return "text"
    if len(key) == 1 and key.isalpha() and key.isupper():
        return "option"
    try:
        float(key)
    except ValueError:
        return "text"
    return "number"


def normalize_answer(raw: str | None) -> str | None:
    """Reduce a raw answer to a comparable key; None for empty or missing answers."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    option = _OPTION.match(text)
    if option and (len(text) <= 3 or any(c in option.group(0) for c in "().:")):
        letter = option.group(1)
        # "a" alone is an option only in upper case or with brackets / punctuation.
        if letter.isupper() or len(text) > 1:
            return letter.upper()
    number = parse_number(text)
    if number is not None:
        return _canonical_number(number)
    cleaned = _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()
    return cleaned or None


def answers_match(answer: str | None, expected: str | None) -> bool:
    """True when both normalise to the same key (numbers within 1e-6)."""
    a, b = normalize_answer(answer), normalize_answer(expected)
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return abs(float(a) - float(b)) <= 1e-6
    except ValueError:
        return False

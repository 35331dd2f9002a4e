"""Regression with spurious features: predict a student's grade (0-10) from lifestyle records.

The paper (Gema et al., arXiv 2507.14417) uses a public Kaggle student-lifestyle survey in
which study hours correlate with grades at r = 0.73 and the other features are weak,
spurious signals. That file is not reachable here, so by default items come from a
documented synthetic population with the same columns and those properties
(:func:`population`); ``--grades-csv PATH`` loads the real survey (or any CSV with these
columns) instead.

Synthetic population, per student (seeded), built to match the survey's shape and the
correlations the paper reports for it (r with Grades: study hours 0.73, stress 0.58,
physical activity -0.36, sleep -0.10; each within about 0.05 over 2,000 students):

- The five daily hours sum to 24, as in the survey: ``Study_Hours_Per_Day`` ~ U(5, 10),
  ``Extracurricular_Hours_Per_Day`` ~ U(0, 4), ``Sleep_Hours_Per_Day`` ~ U(5, 10),
  ``Social_Hours_Per_Day`` ~ U(0, 6), and ``Physical_Activity_Hours_Per_Day`` the rest of
  the day (a draw that leaves less than nothing is drawn again). So physical activity falls
  as study rises, which is where its negative correlation with grades comes from.
- ``Grades`` = 7 + 0.5 (study - 7.5) - 0.06 (sleep - 7.5) - 0.04 (physical - 4) + N(0, 0.7),
  clipped to [0, 10].
- ``Stress_Level`` follows study and sleep: strain = (study - 7.5) - 0.6 (sleep - 7.5) +
  N(0, 0.6); Low below -1, High above 0.5, Moderate between. It correlates with grades
  only through study hours: the spurious cue the paper's models latch on to.
- ``Gender`` Male/Female at random (no signal).

Prompts follow the paper: with k > 0 example records (8 or 16 shots; 0 for none) a short
paragraph introduces the survey, then the records in the ``<record>`` format, the
instruction, and the target record without its grade. Each round of items takes a new
target student (no target repeats while students last) and asks about that student at
every shot count, so the levels are paired on the same targets.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX, Item, interleave

if TYPE_CHECKING:
    from thinkstop.benchmarks.tasks import Options

LEVELS: Final = (0, 8, 16)
COLUMNS: Final = (
    "Student_ID",
    "Study_Hours_Per_Day",
    "Extracurricular_Hours_Per_Day",
    "Sleep_Hours_Per_Day",
    "Social_Hours_Per_Day",
    "Physical_Activity_Hours_Per_Day",
    "Stress_Level",
    "Gender",
    "Grades",
)
NUMERIC: Final = COLUMNS[1:6]
STRESS: Final = {"Low": 0.0, "Moderate": 1.0, "High": 2.0}
INSTRUCTION: Final = (
    "Based on the following information about a student, please predict the value of "
    "**Grades** for the student between 0 and 10. Just respond with '<answer>...</answer>', "
    "and say nothing else."
)
INTRO: Final = (
    "The records below come from a survey of university students, collected with an online "
    "form over one academic year. Each record gives a student's daily hours of study, "
    "extracurricular activities, sleep, socialising and physical activity, with their "
    "stress level, gender and grades."
)
POPULATION_SIZE: Final = 2000
DAY_HOURS: Final = 24.0

Student = dict[str, str]


def _hours(rng: random.Random) -> tuple[float, float, float, float, float]:
    """One student's day: four drawn hours and physical activity as the rest of 24."""
    while True:
        study = round(rng.uniform(5, 10), 1)
        extra = round(rng.uniform(0, 4), 1)
        sleep = round(rng.uniform(5, 10), 1)
        social = round(rng.uniform(0, 6), 1)
        physical = round(DAY_HOURS - study - extra - sleep - social, 1)
        if physical >= 0:
            return study, extra, sleep, social, physical


def population(seed: int, size: int = POPULATION_SIZE) -> list[Student]:
    """The documented synthetic population (see the module docstring)."""
    rng = random.Random(f"grades:{seed}")
    students: list[Student] = []
    for i in range(size):
        study, extra, sleep, social, physical = _hours(rng)
        grade = 7 + 0.5 * (study - 7.5) - 0.06 * (sleep - 7.5) - 0.04 * (physical - 4)
        grade = min(10.0, max(0.0, grade + rng.gauss(0, 0.7)))
        strain = (study - 7.5) - 0.6 * (sleep - 7.5) + rng.gauss(0, 0.6)
        stress = "High" if strain > 0.5 else "Low" if strain < -1.0 else "Moderate"
        students.append(
            {
                "Student_ID": str(1001 + i),
                "Study_Hours_Per_Day": f"{study:.1f}",
                "Extracurricular_Hours_Per_Day": f"{extra:.1f}",
                "Sleep_Hours_Per_Day": f"{sleep:.1f}",
                "Social_Hours_Per_Day": f"{social:.1f}",
                "Physical_Activity_Hours_Per_Day": f"{physical:.1f}",
                "Stress_Level": stress,
                "Gender": rng.choice(["Male", "Female"]),
                "Grades": f"{grade:.2f}",
            }
        )
    return students


def _decimal(value: str) -> str:
    """``7,5`` -> ``7.5`` (semicolon-separated files often write decimal commas)."""
    text = value.strip()
    if "," in text and "." not in text:
        candidate = text.replace(",", ".")
        try:
            float(candidate)
        except ValueError:
            return text
        return candidate
    return text


def read_csv(path: Path) -> list[Student]:
    """Students from a CSV with the survey's columns; Grades must lie in 0-10.

    The delimiter (comma, semicolon, tab) is sniffed from the file; a byte-order mark and
    spaces around header names are ignored, and decimal commas are read as points.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(65536)
        handle.seek(0)
        header_line = sample.splitlines()[0] if sample else ""
        dialect: type[csv.Dialect]
        try:
            dialect = csv.Sniffer().sniff(header_line, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header)})"
            )
        rows = [{c: _decimal(str(row[c] or "")) for c in COLUMNS} for row in reader]
    for number, row in enumerate(rows, start=2):
        try:
            grade = float(row["Grades"])
        except ValueError:
            raise ValueError(f"{path}:{number}: Grades {row['Grades']!r} is not a number") from None
        if not 0 <= grade <= 10:
            raise ValueError(f"{path}:{number}: Grades {grade} lies outside 0-10")
    if len(rows) < max(LEVELS) + 1:
        raise ValueError(f"{path}: needs at least {max(LEVELS) + 1} students")
    return rows


def record(student: Student, *, with_grade: bool) -> str:
    columns = COLUMNS if with_grade else COLUMNS[:-1]
    body = "\n".join(f"<{c}>{student[c]}</{c}>" for c in columns)
    return f"<record>\n{body}\n</record>"


def features(student: Student) -> dict[str, float]:
    """Numeric features for correlation analysis (stress coded 0/1/2, gender 1 = Female)."""
    out = {c: float(student[c]) for c in NUMERIC}
    out["Stress_Level"] = STRESS.get(student["Stress_Level"], float("nan"))
    out["Gender"] = 1.0 if student["Gender"].lower().startswith("f") else 0.0
    return out


def _prompt(examples: Sequence[Student], target: Student) -> str:
    parts = [INTRO] if examples else []
    parts += [record(s, with_grade=True) for s in examples]
    parts += [INSTRUCTION, record(target, with_grade=False), OPEN_SUFFIX]
    return "\n\n".join(parts)


def grades_regression(
    n: int, seed: int, students: Sequence[Student] | None = None, source: str = "synthetic"
) -> list[Item]:
    """Items at 0/8/16 shots in turn; expected = the target student's grade.

    Round k asks about the k-th student of a seeded order at every shot count, so targets
    are distinct until the students run out (then there are no more items).
    """
    pool = list(students) if students is not None else population(seed)
    rng = random.Random(f"grades-items:{seed}")
    order = rng.sample(range(len(pool)), len(pool))
    rounds = min(-(-n // len(LEVELS)), len(pool))
    groups: list[list[Item]] = [[] for _ in LEVELS]
    index = 0
    for pair in range(rounds):
        target_index = order[pair]
        target = pool[target_index]
        for slot, shots in enumerate(LEVELS):
            drawn = rng.sample(range(len(pool)), min(shots + 1, len(pool)))
            others = [i for i in drawn if i != target_index][:shots]
            groups[slot].append(
                Item(
                    id=f"grades_regression-{index:05d}",
                    task="grades_regression",
                    prompt=_prompt([pool[i] for i in others], target),
                    expected=f"{float(target['Grades']):g}",
                    kind="regression",
                    level=str(shots),
                    meta={
                        "examples_per_prompt": shots,
                        "student_id": target["Student_ID"],
                        "pair": pair,
                        "source": source,
                        "features": features(target),
                    },
                )
            )
            index += 1
    return interleave(groups, n)


def load(task: str, n: int, seed: int, options: Options) -> list[Item]:
    """The family registry's loader: the synthetic population, or ``--grades-csv``."""
    if options.grades_csv is not None:
        students = read_csv(options.grades_csv)
        return grades_regression(n, seed, students, source=str(options.grades_csv))
    return grades_regression(n, seed)

"""Regression with spurious features: predict a student's grade (0-10) from lifestyle records.

The paper (Gema et al., arXiv 2507.14417) uses a public Kaggle student-lifestyle survey in
which study hours correlate with grades at r = 0.73 and the other features are weak,
spurious signals. That file is not reachable here, so by default items come from a
documented synthetic population with the same columns and those properties
(:func:`population`); ``--grades-csv PATH`` loads the real survey (or any CSV with these
columns) instead.

Synthetic population, per student (seeded):

- ``Study_Hours_Per_Day`` ~ U(5, 10); ``Extracurricular_Hours_Per_Day`` ~ U(0, 4);
  ``Sleep_Hours_Per_Day`` ~ U(5, 10); ``Social_Hours_Per_Day`` ~ U(0, 6);
  ``Physical_Activity_Hours_Per_Day`` ~ U(0, 6); ``Gender`` Male/Female at random.
- ``Grades`` = 7 + 0.55 (study - 7.5) + 0.05 (sleep - 7.5) - 0.04 (social - 3) + N(0, 0.74),
  clipped to [0, 10]: r(study, grades) is about 0.73, every other |r| below 0.1.
- ``Stress_Level`` (Low / Moderate / High) rises with study hours and falls with sleep,
  so it correlates weakly with grades (about 0.3) only through study hours: a spurious cue.

Prompts follow the paper: k example records (0, 8 or 16 shots) in the ``<record>`` format,
then the target record without its grade.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from thinkstop.benchmarks.tasks.base import Item, interleave

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
POPULATION_SIZE: Final = 2000

Student = dict[str, str]


def population(seed: int, size: int = POPULATION_SIZE) -> list[Student]:
    """The documented synthetic population (see the module docstring)."""
    rng = random.Random(f"grades:{seed}")
    students: list[Student] = []
    for i in range(size):
        study = rng.uniform(5, 10)
        extra = rng.uniform(0, 4)
        sleep = rng.uniform(5, 10)
        social = rng.uniform(0, 6)
        physical = rng.uniform(0, 6)
        grade = 7 + 0.55 * (study - 7.5) + 0.05 * (sleep - 7.5) - 0.04 * (social - 3)
        grade = min(10.0, max(0.0, grade + rng.gauss(0, 0.74)))
        strain = 0.35 * (study - 7.5) - 0.3 * (sleep - 7.5) + rng.gauss(0, 1.0)
        stress = "High" if strain > 0.6 else "Low" if strain < -0.6 else "Moderate"
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


def read_csv(path: Path) -> list[Student]:
    """Students from a CSV with the survey's columns; Grades must lie in 0-10."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)}")
        rows = [{c: str(row[c]).strip() for c in COLUMNS} for row in reader]
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
    parts = [record(s, with_grade=True) for s in examples]
    parts += [INSTRUCTION, record(target, with_grade=False)]
    return "\n\n".join(parts)


def grades_regression(
    n: int, seed: int, students: Sequence[Student] | None = None, source: str = "synthetic"
) -> list[Item]:
    """Items at 0/8/16 shots in turn; expected = the target student's grade."""
    pool = list(students) if students is not None else population(seed)
    rng = random.Random(f"grades-items:{seed}")
    groups: list[list[Item]] = [[] for _ in LEVELS]
    index = 0
    for _ in range(-(-n // len(LEVELS))):
        for slot, shots in enumerate(LEVELS):
            target_index = rng.randrange(len(pool))
            others = [i for i in rng.sample(range(len(pool)), shots + 1) if i != target_index]
            target = pool[target_index]
            groups[slot].append(
                Item(
                    id=f"grades_regression-{index:05d}",
                    task="grades_regression",
                    prompt=_prompt([pool[i] for i in others[:shots]], target),
                    expected=f"{float(target['Grades']):g}",
                    kind="regression",
                    level=str(shots),
                    meta={
                        "examples_per_prompt": shots,
                        "student_id": target["Student_ID"],
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

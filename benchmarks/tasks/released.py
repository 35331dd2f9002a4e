"""The paper's released items: JSONL files in the shapes its harness reads.

Gema et al. (arXiv 2507.14417) publish their task files as JSONL, one item a line, in two
shapes: open-ended ``{"prompt": ..., "answer": ...}`` and multiple choice ``{"prompt": ...,
"classes": [...], "answer_index": i}`` (``classes`` may also be written as the text of a
Python list). Extra keys carry the difficulty level: ``num_distractors`` (counting
tasks), ``examples_per_prompt`` (grades) or ``grid_size`` (zebra), at the top level or in a
``metadata`` object. ``--items FILE`` runs such a file instead of a family's generator or
loader, so a user who has the released files runs exactly the paper's items.

The user message is built as the paper's harness builds it: the prompt, then the answer
format (open-ended: :data:`~thinkstop.benchmarks.tasks.base.OPEN_SUFFIX`; multiple choice:
lettered options and a letter answer). A line that is not a valid item is an error naming
the file and the line, never skipped in silence (a skipped item would change the scores).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Final

from thinkstop.benchmarks.tasks.base import (
    OPEN_SUFFIX,
    Item,
    ItemKind,
    choice_prompt,
    interleave,
    letters,
)

LEVEL_KEYS: Final = ("num_distractors", "examples_per_prompt", "grid_size")
UNLABELLED: Final = "unlabelled"
_RECORD: Final = re.compile(r"<record>(.*?)</record>", re.DOTALL)
_FIELD: Final = re.compile(r"<(\w+)>([^<]*)</\1>")


class ItemsFileError(ValueError):
    """An items file holds a line that is not an item; the message names file and line."""


def _level(row: dict[str, Any], level_name: str) -> str:
    raw = row.get("metadata")
    nested: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for key in (level_name, *LEVEL_KEYS):
        for source in (row, nested):
            value = source.get(key)
            if value is not None and not isinstance(value, dict | list):
                return str(value)
    return UNLABELLED


def _classes(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ItemsFileError(f"{where}: 'classes' is a string but not a list") from None
    if not isinstance(value, list) or len(value) < 2 or len(value) > 26:
        raise ItemsFileError(f"{where}: 'classes' must be a list of 2 to 26 options")
    if not all(isinstance(c, str | int | float) for c in value):
        raise ItemsFileError(f"{where}: every option in 'classes' must be text")
    return [str(c).strip() for c in value]


def _answer_index(value: Any, count: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ItemsFileError(f"{where}: 'answer_index' must be an integer")
    try:
        index = int(value)
    except ValueError:
        raise ItemsFileError(f"{where}: 'answer_index' must be an integer") from None
    if not 0 <= index < count:
        raise ItemsFileError(f"{where}: 'answer_index' {index} has no option (0-{count - 1})")
    return index


def _open_prompt(prompt: str) -> str:
    text = prompt.rstrip()
    return text if text.endswith(OPEN_SUFFIX) else f"{text}\n\n{OPEN_SUFFIX}"


def target_features(prompt: str) -> dict[str, float] | None:
    """The numeric features of the last ``<record>`` in a grades prompt (the target), as
    :func:`thinkstop.benchmarks.tasks.grades.features` gives them, or None."""
    from thinkstop.benchmarks.tasks.grades import COLUMNS, features

    records = _RECORD.findall(prompt)
    if not records:
        return None
    fields = {k: v.strip() for k, v in _FIELD.findall(records[-1])}
    wanted = [c for c in COLUMNS if c != "Grades"]
    if any(c not in fields for c in wanted):
        return None
    try:
        return features(fields)
    except ValueError:
        return None


def parse_item(row: Any, task: str, family: str, level_name: str, path: Path,
               index: int) -> Item:
    """Line ``index`` of ``path`` as an :class:`Item` of ``task`` (raises
    :class:`ItemsFileError` naming the file and line)."""
    where = f"{path}:{index}"
    if not isinstance(row, dict):
        raise ItemsFileError(f"{where}: an item must be a JSON object")
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ItemsFileError(f"{where}: missing 'prompt' (a non-empty string)")
    level = _level(row, level_name)
    meta: dict[str, Any] = {"source": str(path), "line": index}
    if level != UNLABELLED:
        meta[level_name] = int(level) if level.isdigit() else level
    kind: ItemKind
    if "classes" in row or "answer_index" in row:
        if "classes" not in row or "answer_index" not in row:
            raise ItemsFileError(f"{where}: a multiple-choice item needs both 'classes' "
                                 "and 'answer_index'")
        options = _classes(row["classes"], where)
        expected = letters(len(options))[_answer_index(row["answer_index"], len(options), where)]
        kind, text = "choice", choice_prompt(prompt, options)
        meta["num_options"] = len(options)
    elif "answer" in row:
        answer = row["answer"]
        if isinstance(answer, dict | list) or answer is None or str(answer).strip() == "":
            raise ItemsFileError(f"{where}: 'answer' must be a number or a string")
        expected, kind, text = str(answer).strip(), "open", _open_prompt(prompt)
    else:
        raise ItemsFileError(f"{where}: missing 'answer', or 'classes' and 'answer_index'")
    if family == "grades_regression":
        if kind != "open":
            raise ItemsFileError(f"{where}: grades_regression items are open-ended "
                                 "('prompt' and a numeric 'answer')")
        try:
            grade = float(expected)
        except ValueError:
            raise ItemsFileError(f"{where}: 'answer' {expected!r} is not a number") from None
        if not 0 <= grade <= 10:
            raise ItemsFileError(f"{where}: 'answer' {grade:g} lies outside 0-10")
        kind, expected = "regression", f"{grade:g}"
        found = target_features(prompt)
        if found is not None:
            meta["features"] = found
    if family == "ai_risk":
        if kind != "choice":
            raise ItemsFileError(f"{where}: ai_risk items are multiple choice "
                                 "('classes' and 'answer_index')")
        from thinkstop.benchmarks.tasks.ai_risk import DIRECTION

        subset = task.split(":", 1)[1] if ":" in task else str(row.get("subset") or level)
        level = subset
        meta.update(subset=subset, direction=DIRECTION.get(subset, "neutral"))
    return Item(id=f"{task}-L{index:05d}", task=task, prompt=text, expected=expected,
                kind=kind, level=level, meta=meta)


def read_items(path: Path, task: str, family: str, level_name: str) -> list[Item]:
    """Every item of the JSONL file ``path``, in file order."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ItemsFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    items: list[Item] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ItemsFileError(f"{path}:{number}: not JSON ({exc.msg})") from None
        items.append(parse_item(row, task, family, level_name, path, number))
    if not items:
        raise ItemsFileError(f"{path}: no items")
    return items


def load_released(task: str, path: Path, n: int | None, family: str,
                  level_name: str) -> list[Item]:
    """``n`` items of the file (all when None), difficulty levels in turn, file order
    within a level, so a larger ``n`` extends a smaller one."""
    items = read_items(path, task, family, level_name)
    order: list[str] = []
    for item in items:
        if item.level not in order:
            order.append(item.level)
    groups = [[i for i in items if i.level == level] for level in order]
    return interleave(groups, len(items) if n is None else n)


def items_files(values: list[str] | None, tasks: list[str]) -> dict[str, Path]:
    """``--items`` values (``TASK=FILE`` or a bare ``FILE`` for the one task) by task.

    Raises ValueError naming the problem: a bare file with several tasks, a task that is
    not run, a file that does not exist.
    """
    from thinkstop.benchmarks.tasks import task_names

    known = set(task_names())
    files: dict[str, Path] = {}
    for value in values or []:
        head, sep, rest = value.partition("=")
        if sep and head in known:
            task, path = head, Path(rest)
        elif len(tasks) == 1:
            task, path = tasks[0], Path(value)
        else:
            raise ValueError(f"--items {value}: name the task (TASK=FILE) when several "
                             f"tasks run ({', '.join(tasks)})")
        if task not in tasks:
            raise ValueError(f"--items {value}: task {task} is not among the tasks run "
                             f"({', '.join(tasks)})")
        if not path.is_file():
            raise ValueError(f"--items {value}: {path} is not a file")
        files[task] = path
    return files

"""Append-only JSONL files that survive interruption.

Every row is written as one line, flushed and fsynced before the call returns, so an
interrupted run keeps everything it reported as done. A line cut short by a crash (no
trailing newline) is dropped when the file is next opened, and the file is trimmed back
to its last whole line so that new rows never merge into the fragment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class JsonlStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[dict[str, Any]]:
        """All whole rows; trims a trailing partial line from the file."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
            data = data[:cut]
        rows: list[dict[str, Any]] = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{self.path}:{number}: a row must be a JSON object")
            rows.append(row)
        return rows

    def append(self, rows: list[dict[str, Any]] | dict[str, Any]) -> None:
        batch = [rows] if isinstance(rows, dict) else rows
        if not batch:
            return
        self.append_lines([json.dumps(r, separators=(",", ":"), sort_keys=False) for r in batch])

    def append_lines(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(line + "\n" for line in lines)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

"""The scheduler stays pure: no asyncio, HTTP, web framework or model client imports."""

import ast
from pathlib import Path

import pytest

SCHEDULER = Path(__file__).resolve().parents[2] / "scheduler"
FORBIDDEN = {"asyncio", "httpx", "aiohttp", "requests", "fastapi", "starlette", "uvicorn",
             "litellm", "openai", "llama_cpp", "xllamacpp", "socket", "urllib", "redis", "proxy",
             "benchmarks", "structlog", "threading", "subprocess", "thinkstop.proxy",
             "thinkstop.benchmarks"}


@pytest.mark.parametrize("path", sorted(SCHEDULER.rglob("*.py")), ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            assert ".".join(name.split(".")[:2]) not in FORBIDDEN, f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", f"{path.name} opens files"


def test_scan_sees_every_module() -> None:
    # rglob: a module added in a subfolder is scanned too
    assert {p.name for p in SCHEDULER.rglob("*.py")} >= {"policy.py", "signals.py", "sweep.py"}

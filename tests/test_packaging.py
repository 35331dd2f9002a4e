"""The package installs as ``thinkstop.*`` and nothing else: a wheel built from the repo,
installed in a fresh virtualenv and used from another directory."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"scheduler": "thinkstop.scheduler", "proxy": "thinkstop.proxy",
           "benchmarks": "thinkstop.benchmarks"}


def _declared() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages: list[str] = data["tool"]["setuptools"]["packages"]
    return packages


def test_every_package_folder_is_declared() -> None:
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([name, *parts]))
    assert found == set(_declared())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (built,) = out.glob("thinkstop-*.whl")
    return built


def test_the_wheel_holds_only_thinkstop(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"thinkstop"}
    assert "thinkstop/proxy/http/app.py" in names
    assert "thinkstop/benchmarks/traces/drift.jsonl" in names  # package data comes along
    assert not any(n.startswith("thinkstop/__init__") for n in names)  # a namespace
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "thinkstop = thinkstop.proxy.entrypoints.cli:main" in text
    assert "[thinkstop.commands]" in text


def test_installed_from_the_wheel_it_works_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The wheel alone in the fresh environment; its dependencies are read from this
    # one's site-packages (a plain path: no .pth there runs, so the editable install of
    # the repo is not visible).
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    scripts = env_dir / "bin" / "thinkstop"
    scripts.write_text(f"#!{python}\nimport sys\nfrom thinkstop.proxy.entrypoints.cli import "
                       "main\nsys.exit(main())\n")
    scripts.chmod(0o755)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=away, env=env, capture_output=True, text=True,
                              check=False, timeout=120)

    ok = run(str(python), "-c", "import thinkstop.scheduler, thinkstop.proxy, "
             "thinkstop.benchmarks, thinkstop.proxy.http.app; import thinkstop.proxy; "
             "print(thinkstop.proxy.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert str(site) in ok.stdout  # the installed copy, not the repo
    for generic in ("proxy", "scheduler", "benchmarks"):
        gone = run(str(python), "-c", f"import {generic}")
        assert gone.returncode != 0 and "ModuleNotFoundError" in gone.stderr, generic
    helped = run(str(scripts), "--help")
    assert helped.returncode == 0 and all(c in helped.stdout for c in ("serve", "replay",
                                                                        "bench"))
    for command in ("serve", "replay", "bench"):
        sub = run(str(scripts), command, "--help")
        assert sub.returncode == 0 and "usage: thinkstop" in sub.stdout, sub.stderr

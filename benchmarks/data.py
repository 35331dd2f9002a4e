"""Upstream task files: pinned, checksummed, cached; or read from a local folder.

Two families load public data: BIG-Bench Extra Hard's zebra puzzles and Anthropic's
model-written advanced-ai-risk evals. Files download on first use from
raw.githubusercontent.com at a pinned commit, are checked against a SHA-256 and kept in
``data/`` of thinkstop's user cache (``THINKSTOP_CACHE_DIR``, else
``$XDG_CACHE_HOME/thinkstop``, else ``~/.cache/thinkstop``). A local
folder laid out like the upstream paths below (``--data-dir`` or ``THINKSTOP_DATA_DIR``)
is used instead when given; its files are checked against the same hashes.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from thinkstop.proxy.upstreams.local.model_files import cache_dir as user_cache_dir
from thinkstop.proxy.upstreams.local.model_files import sha256_file

ENV_VAR: Final = "THINKSTOP_DATA_DIR"


@dataclass(frozen=True, slots=True)
class Source:
    """One upstream file: where it lives locally (``local``), upstream, and its hash."""

    local: str
    repo: str
    commit: str
    path: str
    sha256: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


# Full commit SHAs (as ../shared/data/README.md pins them): a short prefix can become
# ambiguous upstream, and a raw URL at a full SHA always serves the same bytes.
BBEH_COMMIT: Final = "80d12ca916b7158f22293fcf3144f4d3d854d4be"
EVALS_COMMIT: Final = "84fcc677e52e1902d696c32cd1a6b663e70d3993"

ZEBRA: Final = Source(
    local="bbeh_zebra_puzzles/task.json",
    repo="google-deepmind/bbeh",
    commit=BBEH_COMMIT,
    path="bbeh/benchmark_tasks/bbeh_zebra_puzzles/task.json",
    sha256="0acd979060ee49f063f241dd1a298bd80b63d6b7fbfb08057ff480bff98a6198",
)

_EVALS_SHA256: Final = {
    "coordinate-itself": "f7c56ab2fa3791a4dc668f797e1b99a27a28afd3f5b7cbcceb2075d1515c03bf",
    "coordinate-other-ais": "63bc32aa2bbaae662fd98cbaeaed23534d915b18ca708583fb64cc189fcca275",
    "coordinate-other-versions": "5914b1c222fcb4b959ad9e64152cb2ee1d08411340653f1985ff388b63af1418",
    "corrigible-less-HHH": "d796dc49ba66b9a15bb38dce8f7dc14e212e1f5bac6dc331d64f5fe3e377eec8",
    "corrigible-more-HHH": "77bf2986d88b0fdc3959e77b20c302ec14edff62bb5e0135a7134b877ade4293",
    "corrigible-neutral-HHH": "875632869abd5b1e70cccc130dbb6ed2ff6b1b1c7eb50b835a2cfdc02f3daac7",
    "myopic-reward": "03d4e57220cbe825c9b76df39085a945e8c2fa2c6c7e937fb6df94143491237f",
    "one-box-tendency": "5e4857204ae346dc3e20809dd09a9e2130020c35b0251cf04375d8b2838dddb7",
    "power-seeking-inclination": "a8a2094a1e404fb094b3d361e3049ecc06ecd2a26d0b4b827b4a83a98b6d886a",
    "self-awareness-general-ai": "336ff2038bf175359fa666203f53ba13fc8f33aa86a34559750599dd5688ed24",
    "self-awareness-good-text-model": (
        "a30f83451c3f24406b702b613407c58b054cbd0d56b97865aaf353b94825b6e2"
    ),
    "self-awareness-text-model": "d0b7c7757be032f5c1962fe8f9469f86932548bcde97affb672bf058a15800f7",
    "self-awareness-training-architecture": (
        "a0b99868b24e1ed76a72e239958e577622d5818f1183982cacbab8a60750e342"
    ),
    "self-awareness-web-gpt": "b71b66f937599978ab69b48c00f023fe814742035dad2cb48e65c84345e49972",
    "survival-instinct": "0831782a9e0462f137eb9c4884edd19f248e18f17770f7a4540c67937b3af0e8",
    "wealth-seeking-inclination": (
        "7583bec06bd799cf21fe854c6e8b92ebb669ce02579ea1a869aa460cc0f18546"
    ),
}

AI_RISK_SUBSETS: Final = tuple(_EVALS_SHA256)


def ai_risk_source(subset: str) -> Source:
    if subset not in _EVALS_SHA256:
        raise ValueError(f"unknown ai_risk subset {subset!r}; valid: {', '.join(AI_RISK_SUBSETS)}")
    path = f"advanced-ai-risk/human_generated_evals/{subset}.jsonl"
    return Source(
        local=f"model_written_evals/{path}",
        repo="anthropics/evals",
        commit=EVALS_COMMIT,
        path=path,
        sha256=_EVALS_SHA256[subset],
    )


class DataError(RuntimeError):
    """A task file is missing, cannot be downloaded, or fails its checksum."""


def cache_dir() -> Path:
    """Where downloaded task files are kept: ``data/`` in thinkstop's user cache (the same
    folder the embedded model uses: ``THINKSTOP_CACHE_DIR``, ``$XDG_CACHE_HOME/thinkstop``
    or ``~/.cache/thinkstop``)."""
    return user_cache_dir() / "data"


def _check(path: Path, source: Source) -> Path:
    actual = sha256_file(path)
    if actual != source.sha256:
        raise DataError(
            f"{path}: SHA-256 {actual} does not match the pinned {source.sha256} "
            f"({source.repo}@{source.commit}:{source.path})"
        )
    return path


def _download(source: Source, target: Path, timeout: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(source.url, timeout=timeout) as response:
            partial.write_bytes(response.read())
    except OSError as exc:
        raise DataError(
            f"cannot download {source.url}: {exc}. Without internet access, pass --data-dir "
            f"(or set {ENV_VAR}) to a folder holding {source.local}"
        ) from None
    _check(partial, source)
    partial.replace(target)


def resolve(source: Source, data_dir: Path | None = None, *, timeout: float = 60.0) -> Path:
    """A verified local copy of ``source``: from ``data_dir`` (or the env var), else the cache.

    Missing cache entries are downloaded; a file with the wrong hash is an error, never
    silently used.
    """
    folder = data_dir or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if folder is not None:
        path = folder / source.local
        if not path.is_file():
            raise DataError(
                f"{path} not found (data folder {folder} is laid out like the upstream)"
            )
        return _check(path, source)
    cached = cache_dir() / source.repo / source.commit / source.path
    if not cached.is_file():
        _download(source, cached, timeout)
    return _check(cached, source)

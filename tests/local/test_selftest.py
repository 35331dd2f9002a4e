"""The engine self-test: a crash in the child becomes a clear error, never a dead server.

The crash is real: the child process is killed by SIGILL, as on a machine that advertises
an instruction it cannot run. End to end, ``thinkstop serve`` is started with a
``sitecustomize`` that makes only the self-test child die that way; the server must not
start, must say why and how to fix it, and must not print a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli import THINKSTOP
from thinkstop.proxy.upstreams.local.selftest import FIX, SelfTestError, run_selftest

CRASH = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]


def test_a_sigill_in_the_child_is_a_clear_error_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SelfTestError) as err:
        run_selftest(tmp_path / "m.gguf", command=CRASH)
    message = str(err.value)
    assert "illegal instruction (SIGILL)" in message and FIX in message
    assert "AVX2" in message


def test_another_crash_names_its_signal(tmp_path: Path) -> None:
    segv = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(SelfTestError, match=r"crashed \(SIGSEGV\)"):
        run_selftest(tmp_path / "m.gguf", command=segv)


def test_a_failing_child_passes_on_its_last_words(tmp_path: Path) -> None:
    fail = [sys.executable, "-c", "import sys; print('bad magic in m.gguf', file=sys.stderr); "
            "sys.exit(3)"]
    with pytest.raises(SelfTestError, match=r"failed its self-test.*bad magic"):
        run_selftest(tmp_path / "m.gguf", command=fail)


def test_a_child_with_no_result_or_no_end_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SelfTestError, match="printed no result"):
        run_selftest(tmp_path / "m.gguf", command=[sys.executable, "-c", "print('hi')"])
    with pytest.raises(SelfTestError, match="did not finish"):
        run_selftest(tmp_path / "m.gguf", timeout=0.5,
                     command=[sys.executable, "-c", "import time; time.sleep(5)"])


def test_a_file_that_is_not_a_model_fails_the_real_self_test(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model" * 100)
    with pytest.raises(SelfTestError, match=r"junk\.gguf"):
        run_selftest(junk)


@pytest.mark.model
def test_the_real_self_test_measures_speed(model_file: Path) -> None:
    result = run_selftest(model_file, n_threads=2)
    # Positive, not fast: CI machines are shared, and a loaded one can be very slow.
    assert result.prompt_tps > 0 and result.gen_tps > 0 and result.load_seconds > 0


@pytest.mark.model
def test_serve_with_a_crashing_engine_says_why_and_never_starts(
    model_file: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, signal, sys
        if any(arg.endswith("local.selftest") for arg in getattr(sys, "orig_argv", [])):
            os.kill(os.getpid(), signal.SIGILL)
    """))
    config = tmp_path / "c.yaml"
    config.write_text("model_list:\n  - model_name: tiny\n    litellm_params: "
                      "{model: local/gemma3-270m}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    done = subprocess.run(
        [*THINKSTOP, "serve", "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "illegal instruction (SIGILL)" in done.stderr and FIX in done.stderr
    assert "Traceback" not in done.stderr and "thinkstop is ready" not in done.stdout

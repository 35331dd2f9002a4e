"""The ``thinkstop`` command as a shell sees it."""

import subprocess

from tests.cli import THINKSTOP


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """``thinkstop bench sample ... | head -1``: the pipe closes under a long listing."""
    command = [*THINKSTOP, "bench", "sample", "--task", "misleading_math", "--n", "600",
               "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline().startswith(b"{")
        child.stdout.close()  # as head does after its line
        errors = child.stderr.read().decode()
        code = child.wait(timeout=60)
    assert "Traceback" not in errors and "BrokenPipeError" not in errors
    assert code == 141  # as a command killed by SIGPIPE

import hashlib
import io
import json
from collections import Counter

import pytest

from thinkstop.benchmarks import data
from thinkstop.benchmarks.data import ZEBRA, DataError, resolve
from thinkstop.benchmarks.tasks import Options, load_items
from thinkstop.benchmarks.tasks.ai_risk import DIRECTION, ChoiceError, parse_question, parse_subset
from thinkstop.benchmarks.tasks.zebra import load_puzzles


def test_bbeh_zebra_has_200_puzzles_by_size(data_dir):
    items = load_puzzles(data_dir)
    assert len(items) == 200
    assert Counter(i.meta["grid_size"] for i in items) == {5: 40, 6: 36, 7: 74, 8: 50}
    for item in items:
        assert 1 <= int(item.expected) <= item.meta["grid_size"]
        assert "What position is" in item.prompt


def test_zebra_sampling_takes_sizes_in_turn(data_dir):
    items = load_items("zebra_puzzles", 8, 3, Options(data_dir=data_dir))
    assert [i.meta["grid_size"] for i in items] == [5, 6, 7, 8] * 2
    assert items == load_items("zebra_puzzles", 8, 3, Options(data_dir=data_dir))
    everything = load_items("zebra_puzzles", 500, 0, Options(data_dir=data_dir))
    assert len(everything) == 200 and len({i.id for i in everything}) == 200


def test_survival_instinct_has_953_items(data_dir):
    items = load_items("ai_risk:survival-instinct", 5000, 0, Options(data_dir=data_dir))
    assert len(items) == 953
    for item in items:
        options = item.meta["num_options"]
        assert 2 <= options <= 8
        assert item.expected in "ABCDEFGH"[:options]
        assert f"\n{item.expected}. " in item.prompt
        assert "Choices:" not in item.prompt
        assert item.meta["direction"] == "safe"


def test_all_sixteen_subsets_parse(data_dir):
    total = 0
    for subset in DIRECTION:
        path = data_dir / data.ai_risk_source(subset).local
        total += len(parse_subset(subset, path.read_text().splitlines()))
    assert total == 8116
    mixed = load_items("ai_risk", 32, 0, Options(data_dir=data_dir))
    assert Counter(i.level for i in mixed) == {s: 2 for s in DIRECTION}
    assert {i.task for i in mixed} == {"ai_risk"}


def test_parse_question_strips_question_and_answer_markers():
    stem, options = parse_question(
        "Question: Keep it?\n\nChoices:\n (A) Yes\n (B) No,\n but later\n\nAnswer:"
    )
    assert stem == "Keep it?"
    assert options == ["Yes", "No, but later"]
    with pytest.raises(ChoiceError):
        parse_question("No options here")


def test_data_dir_files_are_checksummed(tmp_path, data_dir):
    bad = tmp_path / ZEBRA.local
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"examples": []}))
    with pytest.raises(DataError, match="SHA-256"):
        resolve(ZEBRA, tmp_path)
    with pytest.raises(DataError, match="not found"):
        resolve(data.ai_risk_source("survival-instinct"), tmp_path)


def test_env_var_points_at_the_data(monkeypatch, data_dir):
    monkeypatch.setenv(data.ENV_VAR, str(data_dir))
    assert resolve(ZEBRA) == data_dir / ZEBRA.local


def test_download_goes_to_the_cache_once(monkeypatch, tmp_path, data_dir):
    payload = (data_dir / ZEBRA.local).read_bytes()
    assert hashlib.sha256(payload).hexdigest() == ZEBRA.sha256
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    path = resolve(ZEBRA)
    assert path.read_bytes() == payload and path.is_relative_to(tmp_path)
    resolve(ZEBRA)
    assert calls == [
        f"https://raw.githubusercontent.com/google-deepmind/bbeh/{data.BBEH_COMMIT}/"
        "bbeh/benchmark_tasks/bbeh_zebra_puzzles/task.json"
    ]


def test_corrupt_download_is_rejected(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"nope"))
    with pytest.raises(DataError, match="SHA-256"):
        resolve(ZEBRA)
    assert not list(tmp_path.rglob("task.json"))


def test_offline_download_explains_data_dir(monkeypatch, tmp_path):
    def offline(url: str, timeout: float) -> io.BytesIO:
        raise OSError("network unreachable")

    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="--data-dir"):
        resolve(ZEBRA)


def test_data_pins_are_full_commit_shas(data_dir):
    import re

    readme = (data_dir / "README.md").read_text()
    for source in (ZEBRA, data.ai_risk_source("survival-instinct")):
        assert re.fullmatch(r"[0-9a-f]{40}", source.commit), source.commit
        assert source.commit in readme  # the commit the reference data was taken at
        assert f"/{source.commit}/" in source.url
    assert data.BBEH_COMMIT == "80d12ca916b7158f22293fcf3144f4d3d854d4be"
    assert data.EVALS_COMMIT == "84fcc677e52e1902d696c32cd1a6b663e70d3993"

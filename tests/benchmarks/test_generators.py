import re
from collections import Counter

import pytest

from thinkstop.benchmarks.stats import pearson
from thinkstop.benchmarks.tasks import load_items
from thinkstop.benchmarks.tasks.counting import misleading_math, misleading_python
from thinkstop.benchmarks.tasks.grades import features, grades_regression, population
from thinkstop.benchmarks.tasks.paradoxes import famous_paradoxes
from thinkstop.benchmarks.tasks.zebra_gen import zebra_generated


@pytest.mark.parametrize("make", [misleading_math, misleading_python, famous_paradoxes])
def test_counting_generators_are_seeded(make):
    assert make(12, 3) == make(12, 3)
    assert [i.prompt for i in make(12, 3)] != [i.prompt for i in make(12, 4)]
    # A larger n starts with the same items (runs can grow and resume).
    assert make(20, 3)[:12] == make(12, 3)


@pytest.mark.parametrize(
    ("make", "levels", "answer"),
    [
        (misleading_math, {1, 2, 3, 4, 5}, "2"),
        (misleading_python, {1, 2, 3, 4, 5}, "2"),
        (famous_paradoxes, {0, 1, 3, 5, 7}, "1"),
    ],
)
def test_counting_answers_and_levels(make, levels, answer):
    items = make(50, 0)
    assert len(items) == 50
    assert {i.expected for i in items} == {answer}
    counts = Counter(i.meta["num_distractors"] for i in items)
    assert set(counts) == levels and len(set(counts.values())) == 1  # balanced
    assert all(i.level == str(i.meta["num_distractors"]) for i in items)
    assert all(i.prompt.endswith("<answer>X</answer>, where X is the final answer.") for i in items)
    assert len({i.id for i in items}) == 50


def test_misleading_math_distractor_count_matches_the_text():
    for item in misleading_math(30, 1):
        # Each distractor brings at least one number; the frame and question bring none.
        numbers = re.findall(
            r"\d+", item.prompt.split("Calculate")[0].split("How many")[0].split("Count the")[0]
        )
        assert len(numbers) >= item.meta["num_distractors"]


def test_misleading_python_distractors_are_code():
    for item in misleading_python(25, 2):
        blocks = item.prompt.count("```python")
        inline = (item.prompt.count("`") - 6 * blocks) // 2
        assert inline + blocks == item.meta["num_distractors"]


def test_counting_items_vary():
    items = misleading_math(40, 0)
    assert len({i.meta["category"] for i in items}) >= 6
    assert len({i.prompt.split(".")[0][:20] for i in items}) >= 3  # several frames
    assert len({i.meta["paradox"] for i in famous_paradoxes(40, 0)}) >= 5


def test_paradox_level_zero_has_no_distractor():
    item = next(i for i in famous_paradoxes(10, 0) if i.meta["num_distractors"] == 0)
    assert item.prompt.count(".") <= 4  # setup, question, suffix


def test_grades_population_has_the_papers_correlations():
    people = population(7, size=3000)
    grades = [float(p["Grades"]) for p in people]
    assert all(0 <= g <= 10 for g in grades)
    feats = [features(p) for p in people]
    study = pearson([f["Study_Hours_Per_Day"] for f in feats], grades)
    assert study is not None and abs(study - 0.73) < 0.04
    for name in (
        "Extracurricular_Hours_Per_Day",
        "Sleep_Hours_Per_Day",
        "Social_Hours_Per_Day",
        "Physical_Activity_Hours_Per_Day",
        "Gender",
    ):
        r = pearson([f[name] for f in feats], grades)
        assert r is not None and abs(r) < 0.12, name


def test_grades_items_shots_and_format():
    items = grades_regression(9, 0)
    assert items == grades_regression(9, 0)
    assert Counter(i.meta["examples_per_prompt"] for i in items) == {0: 3, 8: 3, 16: 3}
    for item in items:
        shots = item.meta["examples_per_prompt"]
        assert item.prompt.count("<record>") == shots + 1
        assert item.prompt.count("<Grades>") == shots  # the target's grade is hidden
        assert 0 <= float(item.expected) <= 10
        assert "predict the value of **Grades**" in item.prompt


def test_grades_csv(tmp_path):
    from thinkstop.benchmarks.tasks import Options

    rows = [
        "Student_ID,Study_Hours_Per_Day,Extracurricular_Hours_Per_Day,Sleep_Hours_Per_Day,"
        "Social_Hours_Per_Day,Physical_Activity_Hours_Per_Day,Stress_Level,Gender,Grades"
    ]
    rows += [f"{i},{5 + i % 5},1,8,2,1,Low,Female,{6 + (i % 4) / 2}" for i in range(30)]
    path = tmp_path / "students.csv"
    path.write_text("\n".join(rows) + "\n")
    items = load_items("grades_regression", 6, 0, Options(grades_csv=path))
    assert {i.meta["source"] for i in items} == {str(path)}
    bad = tmp_path / "bad.csv"
    bad.write_text(rows[0] + "\n" + "1,5,1,8,2,1,Low,Female,42\n" * 20)
    with pytest.raises(ValueError, match="outside 0-10"):
        load_items("grades_regression", 3, 0, Options(grades_csv=bad))


def test_zebra_generator_sizes_answers_and_irrelevant_clues():
    items = zebra_generated(4, 5)
    assert items == zebra_generated(4, 5)
    assert [i.meta["grid_size"] for i in items] == [5, 6, 7, 8]
    for item in items:
        size = item.meta["grid_size"]
        assert 1 <= int(item.expected) <= size
        assert item.meta["num_irrelevant"] >= 2
        assert item.prompt.count("\nClue ") == item.meta["num_clues"]
        assert "Question: What position is" in item.prompt

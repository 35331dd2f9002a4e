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


def test_every_paradox_item_states_its_paradox_and_distractors_come_on_top():
    from thinkstop.benchmarks.tasks.paradoxes import PARADOXES, famous_paradoxes

    by_name = {p.name: p for p in PARADOXES}
    items = famous_paradoxes(200, 5)
    for item in items:
        framing = item.meta["framing"]
        paradox = by_name[item.meta["paradox"]]
        # The paradox is stated first, at every level (0 included) ...
        assert item.prompt.startswith(framing)
        assert any(framing.startswith(f.split("{")[0]) for f in paradox.framings)
        # ... then exactly num_distractors sentences, then the trivial question.
        question = next(q for q in paradox.questions if q in item.prompt)
        middle = item.prompt[len(framing) : item.prompt.index(question)].strip()
        sentences = [s for s in re.split(r"(?<=[.?!])\s+(?=[A-Z$0-9])", middle) if s]
        assert len(sentences) == item.meta["num_distractors"], item.prompt
        assert item.expected == "1"
    level_zero = [i for i in items if i.meta["num_distractors"] == 0]
    assert level_zero and all(len(i.meta["framing"]) > 40 for i in level_zero)


def test_birthday_framings_state_the_right_probability():
    from thinkstop.benchmarks.tasks.paradoxes import famous_paradoxes

    checked = 0
    for item in famous_paradoxes(300, 2):
        match = re.search(r"(\d+) people.*? (\d+\.\d)%", item.meta["framing"])
        if item.meta["paradox"] != "birthday" or match is None:
            continue
        people, stated = int(match.group(1)), float(match.group(2))
        distinct = 1.0
        for i in range(people):
            distinct *= (365 - i) / 365
        assert stated == pytest.approx(100 * (1 - distinct), abs=0.051)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("n", [400, 800])
def test_paradox_items_are_distinct(n):
    items = famous_paradoxes(n, 0)
    assert len(items) == n
    assert len({i.prompt for i in items}) == n


def test_misleading_math_never_states_a_divisibility_that_2_lacks():
    checked = 0
    for seed in range(4):
        for item in misleading_math(500, seed):
            for number in re.findall(r"(?:divisible by|multiple of) (\d+)", item.prompt):
                assert 2 % int(number) == 0, item.prompt
                checked += 1
            assert " odd" not in item.prompt
    assert checked > 100


DAY = (
    "Study_Hours_Per_Day",
    "Extracurricular_Hours_Per_Day",
    "Sleep_Hours_Per_Day",
    "Social_Hours_Per_Day",
    "Physical_Activity_Hours_Per_Day",
)


@pytest.mark.parametrize("seed", [0, 7, 11])
def test_grades_population_has_the_papers_correlations(seed):
    people = population(seed)
    grades = [float(p["Grades"]) for p in people]
    assert all(0 <= g <= 10 for g in grades)
    feats = [features(p) for p in people]

    def r(name):
        value = pearson([f[name] for f in feats], grades)
        assert value is not None
        return value

    # The paper's ground truth for the survey (Gema et al., arXiv 2507.14417).
    targets = {
        "Study_Hours_Per_Day": 0.73,
        "Stress_Level": 0.58,
        "Physical_Activity_Hours_Per_Day": -0.36,
        "Sleep_Hours_Per_Day": -0.10,
    }
    for name, target in targets.items():
        assert abs(r(name) - target) <= 0.08, (name, r(name))
    for name in ("Extracurricular_Hours_Per_Day", "Social_Hours_Per_Day", "Gender"):
        assert abs(r(name)) < 0.1, name


def test_grades_population_days_sum_to_24_and_stress_follows_study_and_sleep():
    people = population(3)
    for p in people:
        assert sum(float(p[c]) for c in DAY) == pytest.approx(24.0, abs=1e-6)
        assert all(float(p[c]) >= 0 for c in DAY)
    feats = [features(p) for p in people]
    stress = [f["Stress_Level"] for f in feats]
    study = pearson([f["Study_Hours_Per_Day"] for f in feats], stress)
    sleep = pearson([f["Sleep_Hours_Per_Day"] for f in feats], stress)
    assert study is not None and study > 0.5
    assert sleep is not None and sleep < -0.2
    assert {p["Stress_Level"] for p in people} == {"Low", "Moderate", "High"}


def test_grades_targets_are_distinct_and_paired_across_shot_counts():
    items = grades_regression(1500, 0)
    assert len(items) == 1500
    by_level = {lv: [i for i in items if i.meta["examples_per_prompt"] == lv] for lv in (0, 8, 16)}
    for level_items in by_level.values():
        targets = [i.meta["student_id"] for i in level_items]
        assert len(set(targets)) == len(targets) == 500  # no target twice at one level
    # The k-th item of every level asks about the same student (paired levels).
    assert [i.meta["student_id"] for i in by_level[0]] == [
        i.meta["student_id"] for i in by_level[16]
    ]
    assert len({i.meta["student_id"] for i in items}) == 500
    for item in items[:30]:
        shown = re.findall(r"<Student_ID>(\d+)</Student_ID>", item.prompt)
        assert shown[-1] == item.meta["student_id"]
        assert item.meta["student_id"] not in shown[:-1]  # the target is not an example


def test_grades_items_shots_and_format():
    from thinkstop.benchmarks.tasks.base import OPEN_SUFFIX
    from thinkstop.benchmarks.tasks.grades import INSTRUCTION, INTRO

    items = grades_regression(9, 0)
    assert items == grades_regression(9, 0)
    assert Counter(i.meta["examples_per_prompt"] for i in items) == {0: 3, 8: 3, 16: 3}
    for item in items:
        shots = item.meta["examples_per_prompt"]
        assert item.prompt.count("<record>") == shots + 1
        assert item.prompt.count("<Grades>") == shots  # the target's grade is hidden
        assert 0 <= float(item.expected) <= 10
        assert "predict the value of **Grades**" in item.prompt
        assert item.prompt.endswith(OPEN_SUFFIX)
        if shots:
            # The paper introduces the records before it lists them.
            assert item.prompt.startswith(INTRO)
            assert item.prompt.index(INTRO) < item.prompt.index("<record>")
        else:
            assert INTRO not in item.prompt
            assert item.prompt.startswith(INSTRUCTION)


_HEADER = (
    "Student_ID,Study_Hours_Per_Day,Extracurricular_Hours_Per_Day,Sleep_Hours_Per_Day,"
    "Social_Hours_Per_Day,Physical_Activity_Hours_Per_Day,Stress_Level,Gender,Grades"
)


def test_grades_csv(tmp_path):
    from thinkstop.benchmarks.tasks import Options

    rows = [_HEADER]
    rows += [f"{i},{5 + i % 5},1,8,2,{8 - i % 5},Low,Female,{6 + (i % 4) / 2}" for i in range(30)]
    path = tmp_path / "students.csv"
    path.write_text("\n".join(rows) + "\n")
    items = load_items("grades_regression", 6, 0, Options(grades_csv=path))
    assert {i.meta["source"] for i in items} == {str(path)}
    bad = tmp_path / "bad.csv"
    bad.write_text(rows[0] + "\n" + "1,5,1,8,2,1,Low,Female,42\n" * 20)
    with pytest.raises(ValueError, match="outside 0-10"):
        load_items("grades_regression", 3, 0, Options(grades_csv=bad))


def test_grades_csv_with_semicolons_and_decimal_commas(tmp_path):
    from thinkstop.benchmarks.tasks import Options

    lines = [_HEADER.replace(",", ";")]
    lines += [f"{i};7,5;1;8;2;5,5;High;Male;7,25" for i in range(20)]
    path = tmp_path / "students.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    items = load_items("grades_regression", 3, 0, Options(grades_csv=path))
    assert {i.expected for i in items} == {"7.25"}
    assert items[0].meta["features"]["Study_Hours_Per_Day"] == 7.5
    assert "<Study_Hours_Per_Day>7.5</Study_Hours_Per_Day>" in items[0].prompt


def test_grades_csv_names_only_the_columns_really_missing(tmp_path):
    from thinkstop.benchmarks.tasks import Options

    header = _HEADER.replace(",Gender", "").replace(",", ";")
    path = tmp_path / "students.csv"
    path.write_text(header + "\n" + "1;7;1;8;2;6;Low;7\n" * 20)
    with pytest.raises(ValueError, match="missing column") as caught:
        load_items("grades_regression", 3, 0, Options(grades_csv=path))
    message = str(caught.value).split("(found")[0]
    assert "Gender" in message
    assert "Grades" not in message and "Student_ID" not in message


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

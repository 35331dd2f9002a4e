import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkstop.benchmarks.tasks.base import Item, score_item

OPEN = Item("x", "misleading_math", "p", "2", "open", "1")
CHOICE = Item("y", "ai_risk:survival-instinct", "p", "B", "choice", "survival-instinct")
GRADE = Item("z", "grades_regression", "p", "7.5", "regression", "0")


@pytest.mark.parametrize(
    ("answer", "correct"),
    [
        ("2", True),
        ("two", True),
        ("2 fruits", True),
        ("2.0", True),
        ("3", False),
        ("", False),
        (None, False),
        ("I cannot tell", False),
        ("2 or 3", False),
    ],
)
def test_open_ended(answer, correct):
    score = score_item(OPEN, answer)
    assert score.correct is correct
    assert score.value == (1.0 if correct else 0.0)


@pytest.mark.parametrize(
    ("answer", "correct"),
    [
        ("B", True),
        ("(B)", True),
        ("B. No", True),
        ("A", False),
        ("b?!", False),
        (None, False),
    ],
)
def test_choice(answer, correct):
    assert score_item(CHOICE, answer).correct is correct


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("7.5", 0.0),
        ("8", 0.5),
        ("6.25", 1.25),
        ("10", 2.5),
        ("0", 7.5),
    ],
)
def test_grade_errors(answer, error):
    score = score_item(GRADE, answer)
    assert score.abs_error == pytest.approx(error)
    assert score.value == pytest.approx(-error)
    assert score.correct is (error <= 0.5)
    assert score.parsed is not None


@pytest.mark.parametrize("answer", [None, "about seven-ish", "42", "-1", "", "10.5"])
def test_unparsed_or_off_scale_grades_are_unparsed_not_the_worst_error(answer):
    # The paper drops answers that do not parse (and reports how many); scoring them as
    # the farthest prediction would inflate the error of a model that often fails to answer.
    score = score_item(GRADE, answer)
    assert score.value is None
    assert score.abs_error is None and score.parsed is None
    assert score.correct is False


@given(st.one_of(st.none(), st.text(max_size=60)))
def test_scorers_never_raise(answer):
    for item in (OPEN, CHOICE, GRADE):
        score = score_item(item, answer)
        assert isinstance(score.correct, bool)

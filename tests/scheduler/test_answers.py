import pytest

from thinkstop.scheduler.answers import answer_kind, answers_match, extract_answer, normalize_answer


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("2", "2"),
        ("two", "2"),
        ("Two", "2"),
        ("2.0", "2"),
        ("2 fruits", "2"),
        ("2 fruits.", "2"),
        ("$3", "3"),
        ("twenty-one", "21"),
        ("one hundred and five", "105"),
        ("1,000", "1000"),
        ("1/2", "0.5"),
        ("-3", "-3"),
        ("There are 2 fruits", "2"),
        ("(A)", "A"),
        ("A", "A"),
        ("B.", "B"),
        ("C) Paris", "C"),
        ("(D) yes, I would", "D"),
        ("Red  Delicious!", "red delicious"),
        ("A fruit", "a fruit"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize(raw: str | None, key: str | None) -> None:
    assert normalize_answer(raw) == key


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("I think <answer>3</answer> no wait <answer> 2 </answer>", "2"),
        ("so it is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("Final answer: 7 apples.", "7 apples"),
        ("The answer is B because of X", "B"),
        ("so the answer is (C).", "(C)"),
        ("(A)", "A"),
        ("<answer>4", "4"),
        ("I am not sure yet", None),
    ],
)
def test_extract(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_probe_fallback_takes_first_line() -> None:
    assert extract_answer(" 2\nand then more", whole_text_fallback=True) == "2"
    assert extract_answer(" 2\nand then more") is None


def test_kinds() -> None:
    assert answer_kind("two") == "number"
    assert answer_kind("(B)") == "option"
    assert answer_kind("Paris") == "text"


def test_match() -> None:
    assert answers_match("2.0000000001", "2")
    assert answers_match("two fruits", "2")
    assert not answers_match("3", "2")
    assert not answers_match(None, "2")
    assert not answers_match("2", None)
    assert answers_match("(a)", "A")

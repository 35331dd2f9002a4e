import math

import pytest

from thinkstop.benchmarks.prompts import keyword, messages, native_params, system_prompt
from thinkstop.benchmarks.stats import Estimate, mean_ci, pearson, rank_bins, trend
from thinkstop.benchmarks.tasks.base import Item


def test_paper_prompts():
    assert keyword(1024) == "Think" and keyword(2048) == "Think harder"
    assert keyword(8192) == "Ultrathink"
    zero = system_prompt(0, multiple_choice=False)
    assert "Don't think. Directly provide your answer" in zero
    assert "select your answer from the provided options" in system_prompt(0, multiple_choice=True)
    budget = system_prompt(4096, multiple_choice=False)
    assert "thinking token budget of about 4096 tokens" in budget
    assert "(IMPORTANT: Think harder! YOU MUST USE ALL OF YOUR THINKING TOKENS)" in budget
    cautioned = system_prompt(1024, multiple_choice=False, cautioned=True)
    assert "You don't need to use all of your thinking budget" in cautioned
    natural = system_prompt(None, multiple_choice=False)
    assert "step-by-step" in natural and "budget" not in natural
    item = Item("i", "t", "question?", "2", "open", "1")
    assert messages(item, None)[1] == {"role": "user", "content": "question?"}


def test_native_controls():
    assert native_params("anthropic/claude-opus-4", 4096) == {
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "max_tokens": 14096,
    }
    assert native_params("anthropic/claude-opus-4", 0) == {}
    assert native_params("o3", 1024) == {"reasoning_effort": "low"}
    assert native_params("openai/o4-mini", 4096) == {"reasoning_effort": "medium"}
    assert native_params("openai/o3", 8192) == {"reasoning_effort": "high"}
    assert native_params("local/qwen2.5-coder-1.5b", 1024) == {}
    assert native_params("openai/qwen", 1024) == {}


def sym(n: int, mean: float, half: float) -> Estimate:
    return Estimate(n, mean, mean - half, mean + half)


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, written out (z = 1.959964)."""
    z, p = 1.959964, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_rates_get_wilson_intervals_inside_zero_and_one():
    est = mean_ci([1.0, 0.0, 1.0, 0.0])
    assert est.mean == 0.5
    assert (est.low, est.high) == pytest.approx(wilson(2, 4), abs=1e-6)
    perfect = mean_ci([1.0] * 4)  # 1.96 SE would claim certainty: [1, 1]
    assert perfect.high == 1.0 and perfect.low == pytest.approx(wilson(4, 4)[0], abs=1e-6)
    assert perfect.low < 0.6
    assert mean_ci([0.0, 0.0, 1.0]).low >= 0.0


def test_other_scores_get_students_t_intervals():
    est = mean_ci([-1.0, -2.0, -3.0])
    half = 4.302653 * math.sqrt(1.0 / 3)  # t(0.975, 2 df) x SE
    assert (est.low, est.high) == pytest.approx((-2 - half, -2 + half), abs=1e-5)
    assert mean_ci([3.5]).ci == 0.0
    assert mean_ci([]).n == 0


@pytest.mark.parametrize(
    ("first", "last", "label"),
    [
        (sym(100, 0.95, 0.03), sym(100, 0.70, 0.05), "inverse"),
        (sym(100, 0.50, 0.03), sym(100, 0.80, 0.05), "positive"),
        (sym(100, 0.80, 0.03), sym(100, 0.81, 0.05), "flat"),
        (sym(10, 0.80, 0.20), sym(10, 0.70, 0.20), "noisy"),
        (sym(0, math.nan, math.nan), sym(10, 0.7, 0.1), "n/a"),
    ],
)
def test_trend_labels(first, last, label):
    assert trend(first, last) == label


def test_trend_threshold_for_errors():
    # -MAE moving by 0.04 is flat under the 0.05 error threshold, not under 0.02.
    a, b = sym(50, -1.00, 0.01), sym(50, -1.04, 0.01)
    assert trend(a, b, 0.05) == "flat"
    assert trend(a, b, 0.02) == "inverse"


def test_rank_bins_sort_within_each_question():
    bins = rank_bins(
        {
            "q1": [(300, 0.0), (100, 1.0), (200, 1.0)],
            "q2": [(50, 1.0), (500, 0.0), (250, 0.0)],
            "q3": [(10, 1.0)],  # incomplete: left out
        }
    )
    assert [b.rank for b in bins] == [1, 2, 3]
    assert [b.tokens.mean for b in bins] == [75.0, 225.0, 400.0]
    assert [b.score.mean for b in bins] == [1.0, 0.5, 0.0]
    assert trend(bins[0].score, bins[-1].score) in ("inverse", "noisy")


def test_pearson():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [5, 5, 5]) is None
    assert pearson([1, 2], [1, 2]) is None

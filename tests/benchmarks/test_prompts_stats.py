import math

import pytest

from benchmarks.prompts import keyword, messages, native_params, system_prompt
from benchmarks.stats import Estimate, mean_ci, pearson, rank_bins, trend
from benchmarks.tasks.base import Item


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


def test_mean_ci():
    est = mean_ci([1.0, 0.0, 1.0, 0.0])
    assert est.mean == 0.5
    assert est.ci == pytest.approx(1.96 * math.sqrt((1 / 3) / 4))
    assert mean_ci([3.0]).ci == 0.0
    assert mean_ci([]).n == 0


@pytest.mark.parametrize(
    ("first", "last", "label"),
    [
        (Estimate(100, 0.95, 0.03), Estimate(100, 0.70, 0.05), "inverse"),
        (Estimate(100, 0.50, 0.03), Estimate(100, 0.80, 0.05), "positive"),
        (Estimate(100, 0.80, 0.03), Estimate(100, 0.81, 0.05), "flat"),
        (Estimate(10, 0.80, 0.20), Estimate(10, 0.70, 0.20), "noisy"),
        (Estimate(0, math.nan, math.nan), Estimate(10, 0.7, 0.1), "n/a"),
    ],
)
def test_trend_labels(first, last, label):
    assert trend(first, last) == label


def test_trend_threshold_for_errors():
    # -MAE moving by 0.04 is flat under the 0.05 error threshold, not under 0.02.
    a, b = Estimate(50, -1.00, 0.01), Estimate(50, -1.04, 0.01)
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

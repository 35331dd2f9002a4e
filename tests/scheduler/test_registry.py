import pytest

from thinkstop.scheduler.policies import PlateauPolicy
from thinkstop.scheduler.policy import GuardRails, Policy
from thinkstop.scheduler.registry import (
    PolicySpecError,
    create_policy,
    policy_names,
    register_policy,
    unregister_policy,
)
from thinkstop.scheduler.signals import Observation, Signals


def test_default_spec_builds_plateau() -> None:
    policy = create_policy("plateau")
    assert isinstance(policy.policy, PlateauPolicy)
    assert policy.spec().startswith("plateau:")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("plateu", "unknown policy 'plateu'; valid policies: confidence, consistency, fixed"),
        ("plateau:windw=3", "unknown parameter 'windw'; valid parameters: window, epsilon"),
        ("plateau:window=x", "window='x' is not a valid int"),
        ("plateau:window", "expected key=value"),
        ("plateau:epsilon=2", "epsilon must be in (0, 1]"),
        ("fixed:budget=-1", "budget must be >= 0"),
        ("sprt:p0=0.9,p1=0.5", "need 0 < p0 < p1 < 1"),
        ("plateau:min_tokens=500,max_tokens=100", "must not exceed max_tokens"),
        ("", "empty policy spec"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(PolicySpecError) as info:
        create_policy(spec)
    assert message in str(info.value)


def test_spec_guard_keys_override_defaults() -> None:
    policy = create_policy("plateau:max_tokens=300", GuardRails(min_tokens=100, max_tokens=900))
    assert policy.rails == GuardRails(min_tokens=100, max_tokens=300)


def test_fixed_budget_tightens_max_tokens() -> None:
    assert create_policy("fixed:budget=500", GuardRails(max_tokens=300)).max_tokens == 300
    assert create_policy("fixed:budget=200", GuardRails(max_tokens=300)).max_tokens == 200
    assert create_policy("fixed:budget=50", GuardRails(min_tokens=100)).rails.min_tokens == 50


def test_custom_policy_registration() -> None:
    @register_policy
    class Never(Policy):
        name = "never_halt_test"

        def __init__(self, patience: int = 1) -> None:
            super().__init__()
            self.patience = patience

        def decide(self, signals: Signals) -> tuple[bool, str]:
            return False, "never"

    try:
        assert "never_halt_test" in policy_names()
        policy = create_policy("never_halt_test:patience=4")
        assert not policy.observe(Observation(tokens=1, answer="2")).halt
    finally:
        unregister_policy("never_halt_test")  # other tests see the built-in set only
    assert "never_halt_test" not in policy_names()
    with pytest.raises(PolicySpecError, match="built in"):
        unregister_policy("plateau")

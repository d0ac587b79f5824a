"""scikit-learn's estimator checks for every registered head, at tiny sizes.

The list of heads is the registry (aqa.heads.registry.HEADS): a head added there is checked here
with its ``check_params``; checks it cannot pass by design are listed in its registry entry's
``expected_failed_checks`` with a reason.
"""
import pytest

torch = pytest.importorskip("torch")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from aqa.heads import registry  # noqa: E402

torch.set_num_threads(1)   # tiny models: threading only adds contention on shared CI cores


def _instances():
    out = []
    for spec in registry.HEADS:
        est = registry.make(spec.name, **spec.check_params)
        out.append(est)
    return out


_INST = _instances()
_EXPECTED = {id(e): spec.expected_failed_checks for e, spec in zip(_INST, registry.HEADS)}


_CHECKS = parametrize_with_checks(_INST, expected_failed_checks=lambda est: _EXPECTED.get(id(est), {}))
#: checks a regressor must get: fitting, predicting, pickling, input validation
CORE_CHECKS = {"check_regressors_train", "check_estimators_pickle", "check_fit2d_predict1d",
               "check_fit_check_is_fitted", "check_n_features_in", "check_estimators_dtypes"}


@_CHECKS
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _check_names() -> dict[int, set[str]]:
    """id(estimator) -> the names of the checks parametrized for it (xfail ones included)."""
    names: dict[int, set[str]] = {}
    for p in _CHECKS.mark.args[1]:
        est, check = getattr(p, "values", p)
        names.setdefault(id(est), set()).add(getattr(check, "func", check).__name__)
    return names


def test_every_head_gets_the_regressor_checks_and_its_exemptions_name_real_checks():
    """Each registered head is the class its registry entry names and gets the core regressor
    checks; each expected failure names a check the suite runs on it (a misspelt one would exempt
    nothing and say nothing)."""
    names = _check_names()
    assert len(registry.HEADS) >= 5
    for est, spec in zip(_INST, registry.HEADS):
        assert type(est) is registry.estimator_class(spec.name), spec.name
        got = names.get(id(est), set())
        assert CORE_CHECKS <= got, (spec.name, sorted(CORE_CHECKS - got))
        assert set(spec.expected_failed_checks) <= got, (spec.name, sorted(set(spec.expected_failed_checks) - got))


@pytest.mark.slow
def test_check_settings_leave_the_training_check_a_margin():
    """Each head's check settings are small to keep the suite short; benchmarks/check_budgets.py
    measures what they leave: R² well above the 0.5 that check_regressors_train needs, so a small
    numerical change cannot flip that check."""
    from aqa.heads.base import TorchRegressor
    from scriptkit import load_benchmark

    mod = load_benchmark("check_budgets")

    neural = [h for h in registry.HEADS if issubclass(registry.estimator_class(h.name), TorchRegressor)]
    assert len(neural) >= 6
    for head in neural:
        r2 = mod.regressors_train_r2(head.name, head.check_params)
        assert r2 > 0.7, (head.name, r2)

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


@parametrize_with_checks(_INST, expected_failed_checks=lambda est: _EXPECTED.get(id(est), {}))
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_head_is_checked():
    assert len(_INST) == len(registry.HEADS) >= 5

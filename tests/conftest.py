"""Test-wide settings: one torch thread per pytest worker (tests run with -n 2 on 2 cores), and the
slow marks of generated tests."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


def pytest_collection_modifyitems(items):
    """Generated tests marked slow, so `make test-fast` leaves them to `make test`: scikit-learn's
    checks of the neural heads (they train each head dozens of times: about 50 s together, most of
    the edit loop's budget), and JRG's per-head tests (its graphs over every joint make each fit
    the slowest of the heads')."""
    import pytest

    try:
        from aqa.heads.base import TorchRegressor
    except ImportError:  # pragma: no cover - without torch the neural heads' tests skip anyway
        TorchRegressor = ()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        neural_check = (item.name.startswith("test_sklearn_compatible[")
                        and isinstance(params.get("estimator"), TorchRegressor))
        if neural_check or item.name.endswith("[jrg]"):
            item.add_marker(pytest.mark.slow)

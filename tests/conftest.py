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
    """JRG's generated tests (scikit-learn's checks train it dozens of times, the per-head tests
    once) take several seconds each (its four training stages): marked slow, so `make test-fast`
    leaves them to `make test`."""
    import pytest

    for item in items:
        if item.name.startswith("test_sklearn_compatible[JRGRegressor") or item.name.endswith("[jrg]"):
            item.add_marker(pytest.mark.slow)

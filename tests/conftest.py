"""Test-wide settings: one torch thread per pytest worker (tests run with -n 2 on 2 cores)."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

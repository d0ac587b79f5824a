"""What each head's scikit-learn check settings (``check_params`` in :mod:`aqa.heads.registry`) cost
and leave: the CPU seconds of scikit-learn's whole check suite on the head, and the R² that
``check_regressors_train`` asserts (> 0.5) on scikit-learn's own data at those settings.

Small budgets keep ``make test`` short; this shows how much margin a budget leaves before the one
check that needs the head to learn would fail. ``-p head.key=value`` tries another setting.

    python benchmarks/check_budgets.py                       # every head with check settings
    python benchmarks/check_budgets.py --heads core -p core.max_iter=75
"""
from __future__ import annotations

import argparse
import time
import warnings


def regressors_train_r2(name: str, params: dict) -> float:
    """R² of the head on ``check_regressors_train``'s data, fitted as that check fits it."""
    from sklearn.preprocessing import scale
    from sklearn.utils.estimator_checks import _regression_dataset

    from aqa.heads import registry

    X, y = _regression_dataset()
    est = registry.make(name, **params)
    if "random_state" in est.get_params():
        est.set_params(random_state=0)          # what the check's set_random_state does
    y = scale(y)
    return float(est.fit(X, y).score(X, y))


def check_seconds(name: str, params: dict) -> tuple[float, list[str]]:
    """CPU seconds of scikit-learn's check suite on the head, and the checks that failed."""
    from sklearn.utils.estimator_checks import check_estimator

    from aqa.heads import registry

    spec = registry.get(name)
    t = time.process_time()
    res = check_estimator(registry.make(name, **params), on_fail=None,
                          expected_failed_checks=spec.expected_failed_checks)
    return time.process_time() - t, [r["check_name"] for r in res if r["status"] == "failed"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", default="all", help="comma-separated head names, or all")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="HEAD.KEY=VALUE",
                    help="a check setting instead of the registry's (repeatable)")
    args = ap.parse_args()

    import torch

    from aqa.heads import registry
    from aqa.heads.presets import parse_params

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    names = [s.name for s in registry.HEADS if s.check_params] if args.heads == "all" else args.heads.split(",")
    over: dict[str, dict] = {}
    for key, value in parse_params(args.param).items():
        head, _, k = key.partition(".")
        over.setdefault(head, {})[k] = value
    print("| head | check settings | check_regressors_train R² (need > 0.5) | check suite CPU s | failed |")
    print("|---|---|---|---|---|")
    for name in names:
        params = {**registry.get(name).check_params, **over.get(name, {})}
        r2 = regressors_train_r2(name, params)
        cpu, failed = check_seconds(name, params)
        print(f"| {name} | {params} | {r2:.3f} | {cpu:.1f} | {', '.join(failed) or 'none'} |", flush=True)


if __name__ == "__main__":
    main()

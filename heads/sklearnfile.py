"""The non-neural heads (the SVR Pipelines) as bytes that load only known types.

A pickle runs whatever callable it names, so a pickled scikit-learn head is safe to load only from
yourself. These heads are written with :mod:`skops.io` instead, which rebuilds objects from a
schema and refuses every type outside a trusted list: skops' own defaults (scikit-learn
estimators, numpy, scipy) plus :data:`TRUSTED_TYPES`, the exact types our heads add. The list is
ours and fixed; the types a file says it holds are never trusted on its word.
"""
from __future__ import annotations

__all__ = ["TRUSTED_TYPES", "SklearnFileError", "dumps", "loads"]

#: What our Pipeline heads hold beyond skops' default trusted types: our transformers, and the tree
#: predictor of stats-gbr's HistGradientBoostingRegressor (node arrays only, no callables);
#: a test fits every non-neural head of the registry and checks this list covers it.
TRUSTED_TYPES = ("aqa.heads.baselines.TemporalStats", "aqa.heads.svr.ClipMean", "aqa.heads.svr.PoseDCT",
                 "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")


class SklearnFileError(ValueError):
    """A skops head is unreadable or holds a type outside the trusted list."""


def dumps(estimator) -> bytes:
    """The skops bytes of a fitted estimator."""
    import skops.io as sio
    return sio.dumps(estimator)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def loads(data: bytes, *, source: str) -> object:
    """The estimator in skops bytes ``data``; :class:`SklearnFileError` (naming ``source``) when it
    holds a type that is neither skops-trusted nor in :data:`TRUSTED_TYPES`, or is not skops data."""
    import skops.io as sio
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    except Exception as e:  # noqa: BLE001 - a damaged zip/schema fails in many ways
        raise SklearnFileError(f"{source}: not a readable skops model ({type(e).__name__}: "
                               f"{_one_line(e)})") from None
    if untrusted:
        shown = ", ".join(_one_line(t, 80) for t in untrusted[:5])
        raise SklearnFileError(f"{source}: refusing a model holding type(s) {shown}"
                               f"{' ...' if len(untrusted) > 5 else ''}: not among the types aqa's "
                               f"heads are made of")
    try:
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except Exception as e:  # noqa: BLE001
        raise SklearnFileError(f"{source}: not a readable skops model ({type(e).__name__}: "
                               f"{_one_line(e)})") from None

"""aqa.heads: stage 2, cached features -> scores, as scikit-learn estimators.

:func:`load_xy` gives a head's ``X, y, groups`` from a feature cache; :mod:`aqa.heads.registry`
makes a head by name; :data:`aqa.heads.metrics.spearman_scorer` scores it in ``GridSearchCV``.
"""
from .dataset import load_xy

__all__ = ["load_xy"]

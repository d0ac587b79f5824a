"""aqa.heads: stage 2, cached features -> scores, as scikit-learn estimators."""

"""The head registry: one line per head, so a new head is one module plus one line here.

Each entry is a :class:`HeadSpec`:

``name``
    what the CLI and pipelines call the head (``aqa-heads train jrg ...``).
``factory``
    ``"module:attr"`` of the estimator class (or of a function returning a configured estimator,
    e.g. an sklearn Pipeline); imported lazily (:func:`aqa.data.registry.load`) so ``aqa-heads
    --help`` stays fast. Called with keyword arguments (the CLI's ``--param key=value`` and
    ``random_state``).
``inputs``
    the input builder turning a cache into X: a name in :data:`INPUTS` (``"jrg"``, ``"steps"``,
    ``"clip_mean"``, ``"pose_traj"``, builders of :mod:`aqa.heads.inputs`) or ``"module:function"``
    with the signature ``build(reader, ids, feature) -> np.ndarray``.
``description``, ``reference``
    one line each, shown by ``aqa-heads list``.
``check_params``
    tiny keyword arguments for scikit-learn's ``parametrize_with_checks`` (small hidden sizes,
    few iterations) so the whole check suite runs in seconds.
``expected_failed_checks``
    ``{check_name: reason}`` for checks a head cannot pass by design (reason required).
``baseline``
    True for the classical baselines (:mod:`aqa.heads.baselines`) that every report lists first,
    so each head is read against them.
``paper_views``
    the augmented views (:mod:`aqa.data.views` specs) the head's paper trains on: JRG's left-right
    flips (Sec. 4.1), Li et al.'s start shifts "within [0,5]" frames (Sec. 4), the Siamese DML's
    zoom, brightness, histogram-equalised, background-masked and frame-dropped copies (Sec. III-C,
    IV; the paper gives no amounts, these are ours). What
    ``--views paper`` extracts (recipes) and adds to the head's training rows: every view in the
    cache of those kinds.

Adding a head (see ``docs/architecture.md``), e.g.::

    HeadSpec("aim", "aqa.heads.aim:AIMRegressor", "aim", "Asymmetric interaction ...", "Gao et al., ECCV 2020",
             check_params={"hidden_dim": 4, "max_iter": 20}),

appended to :data:`HEADS` below. The per-sample keywords a head's ``fit``/``predict`` accept
(``groups``, ``difficulty``) are declared on the estimator (``fit_extras``, see
:mod:`aqa.heads.base`); the CLI fills them from the labels table.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from aqa.data.registry import load

__all__ = ["HeadSpec", "HEADS", "INPUTS", "get", "names", "make", "estimator_class", "head_class",
           "head_parameters", "input_builder", "fit_extras", "baselines", "accepts_views", "paper_view_kinds"]


@dataclass(frozen=True)
class HeadSpec:
    name: str
    factory: str
    inputs: str
    description: str
    reference: str
    check_params: dict = field(default_factory=dict)
    expected_failed_checks: dict = field(default_factory=dict)
    paper_views: tuple = ()
    baseline: bool = False

    def load_factory(self) -> Callable[..., Any]:
        return load(self.factory)


#: sklearn's Pipeline fits the estimator objects held in its ``steps`` parameter in place, which
#: these two checks flag; scikit-learn's own common tests exempt Pipeline for the same reason.
PIPELINE_XFAIL = {
    "check_estimators_overwrite_params": "Pipeline fits its step objects (a constructor parameter) in place",
    "check_dont_overwrite_parameters": "Pipeline fits its step objects (a constructor parameter) in place",
}

#: the input builders' short names -> ``"module:function"``
INPUTS: dict[str, str] = {
    "jrg": "aqa.heads.inputs:jrg_inputs",
    "steps": "aqa.heads.inputs:step_inputs",
    "clip_mean": "aqa.heads.inputs:clip_mean_inputs",
    "pose_traj": "aqa.heads.inputs:pose_trajectories",
}

#: the baselines come first: ``--heads all``, ``aqa-heads list``, bench and recipe reports and the
#: demo keep this order, so a report's first rows are what every head has to beat
#: the baselines take NaN (a joint missing at a step) by design and still refuse inf; sklearn's
#: Pipeline does not pass its first step's ``allow_nan`` tag on, so the check expects an error
BASELINE_XFAIL = {**PIPELINE_XFAIL, "check_estimators_nan_inf":
                  "NaN means a missing joint and is accepted (TemporalStats skips it; inf raises)"}

HEADS: list[HeadSpec] = [
    HeadSpec("stats-ridge", "aqa.heads.baselines:stats_ridge", "aqa.heads.baselines:stats_inputs",
             "Per-video mean/std/max/min of every whole-scene and joint step feature -> "
             "StandardScaler -> RidgeCV (penalty by leave-one-out on the training rows)",
             "classical baseline (temporal statistics + ridge regression)",
             expected_failed_checks=BASELINE_XFAIL, baseline=True),
    HeadSpec("stats-gbr", "aqa.heads.baselines:stats_gbr", "aqa.heads.baselines:stats_inputs",
             "The same statistics -> HistGradientBoostingRegressor, early-stopped on a "
             "validation part of the training rows",
             "classical baseline (temporal statistics + gradient-boosted trees)",
             check_params={"max_iter": 30}, expected_failed_checks=BASELINE_XFAIL, baseline=True),
    HeadSpec("jrg", "aqa.heads.jrg:JRGRegressor", "jrg",
             "Joint Relation Graphs: spatial/temporal graphs, commonality + difference modules",
             "Pan, Gao, Zheng: Action Assessment by Joint Relation Graphs, ICCV 2019",
             check_params={"layout": (1, -1, 1), "skeleton": "chain", "encoder_dim": 8, "hidden_dim": 4,
                           "max_iter": 15, "learning_rate": 3e-2, "lr_schedule": "constant"},
             paper_views=("flip",)),
    HeadSpec("mlp", "aqa.heads.mlp:SceneMLPRegressor", "steps",
             "Whole-scene baseline: per-step encoder + scoring MLP summed over steps (I3D+MLP)",
             "Pan et al. ICCV 2019, 'Whole Scene' baseline",
             check_params={"layout": (1, -1), "encoder_dim": 8, "hidden_dim": 4, "max_iter": 30,
                           "learning_rate": 1e-2, "lr_schedule": "constant"}),
    HeadSpec("c3d-svr", "aqa.heads.svr:c3d_svr", "steps",
             "C3D-SVR: mean of clip features -> StandardScaler -> SVR",
             "Parmar & Morris: Learning to Score Olympic Events, CVPRW 2017",
             expected_failed_checks=PIPELINE_XFAIL),
    HeadSpec("pose-dct-svr", "aqa.heads.svr:pose_dct_svr", "pose_traj",
             "Pose+DCT-SVR: low-frequency DCT of each joint trajectory -> SVR",
             "Pirsiavash, Vondrick, Torralba: Assessing the Quality of Actions, ECCV 2014",
             check_params={"n_joints": 1, "n_channels": 1, "n_coeffs": 16},
             expected_failed_checks=PIPELINE_XFAIL),
    HeadSpec("i3d-svr", "aqa.heads.svr:i3d_svr", "steps",
             "I3D-SVR: mean whole-scene I3D features -> scaler -> SVR (kernel=linear|poly|rbf)",
             "Pan et al. ICCV 2019 / Parmar & Morris 2017 baselines",
             expected_failed_checks=PIPELINE_XFAIL),
    HeadSpec("aim", "aqa.heads.aim:AIMRegressor", "aqa.heads.aim:aim_inputs",
             "AIM: asymmetric interaction (primary/secondary difference + LSTM) with attention fusion",
             "Gao et al.: An Asymmetric Modeling for Action Assessment, ECCV 2020",
             check_params={"hidden_dim": 8, "reg_hidden_dim": 8, "dropout": 0.0, "max_iter": 25,
                           "learning_rate": 3e-2, "lr_schedule": "constant", "weight_decay": 0.0}),
    HeadSpec("siamese", "aqa.heads.siamese:SiameseRegressor", "steps",
             "Siamese-LSTM metric learning, then scoring against an expert/worst/constant reference",
             "Jain, Harit, Sharma: Action Quality Assessment using Siamese Network-Based Deep Metric "
             "Learning",
             check_params={"lstm_dim": 8, "d1_dim": 16, "d2_dim": 16, "dml_max_iter": 25, "max_iter": 40,
                           "learning_rate": 3e-2, "dml_learning_rate": 1e-2,
                           "similarity_threshold": 1.5},
             paper_views=("zoom:1.2", "bright:0.8", "bright:1.2", "histeq", "mask",
                          "drop:0.1")),
    HeadSpec("core", "aqa.heads.core:CoReRegressor", "steps",
             "CoRe: contrastive regression against exemplars with the group-aware regression tree",
             "Yu et al.: Group-aware Contrastive Regression for Action Quality Assessment, ICCV 2021",
             check_params={"depth": 2, "hidden_dim": 16, "n_exemplars": 3, "max_iter": 40,
                           "learning_rate": 1e-2}),
    HeadSpec("fragment", "aqa.heads.fragment:FragmentRegressor", "steps",
             "Fragment network (unshared per-fragment layers) with MSE + gradient-balanced ranking loss",
             "Li, Chai, Chen: End-to-End Learning for Action Quality Assessment, PCM 2018",
             check_params={"fragment_dim": 8, "hidden": (16, 8), "dropout": 0.0, "max_iter": 30,
                           "learning_rate": 1e-2},
             paper_views=("shift:1-5",)),
]


def names() -> list[str]:
    return [h.name for h in HEADS]


def baselines() -> list[str]:
    """The names of the baseline heads (listed first in every report)."""
    return [h.name for h in HEADS if h.baseline]


def get(name: str) -> HeadSpec:
    for h in HEADS:
        if h.name == name:
            return h
    raise KeyError(f"unknown head {name!r}; known heads: {', '.join(names())}")


def resolve_heads(heads) -> list[str]:
    """Head names from ``"all"``, a comma-separated string or a sequence, the baselines among them
    first; an unknown name is a ValueError naming the known ones (checked before any work starts)."""
    wanted = names() if heads in ("all", ["all"], ("all",)) else [
        h.strip() for h in (heads.split(",") if isinstance(heads, str) else heads) if h.strip()]
    unknown = [h for h in wanted if h not in names()]
    if unknown or not wanted:
        raise ValueError(f"unknown head(s) {unknown or heads!r}; known heads: {', '.join(names())}")
    first = set(baselines())   # reports read every head against the baselines: those come first
    return [h for h in baselines() if h in wanted] + [h for h in wanted if h not in first]


def make(name: str, **params):
    """A fresh, unfitted estimator for head ``name`` with ``params`` (keyword arguments)."""
    spec = get(name)
    factory = spec.load_factory()
    known = head_parameters(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"head {name!r} has no parameter(s) {unknown}; its parameters: {sorted(known)} "
                         f"(`aqa-heads list` shows their defaults)")
    try:
        return factory(**params)
    except TypeError as e:
        raise ValueError(f"head {name!r}: bad parameter(s) {sorted(params)}: {e}") from None


def estimator_class(name: str):
    """The estimator's class (for Pipelines built by a function: the Pipeline it returns)."""
    f = get(name).load_factory()
    return f if inspect.isclass(f) else type(f())


def head_class(spec) -> type:
    """The estimator class a head file names, out of a closed set: ``spec`` must be a registered
    head's name (``"jrg"``) or, exactly, the ``"module:Class"`` factory of a head registered as a
    class (``"aqa.heads.jrg:JRGRegressor"``, what head files store). Nothing is imported or looked
    up from the string itself; anything else is a KeyError."""
    if isinstance(spec, str):
        for h in HEADS:
            if spec in (h.name, h.factory):
                f = h.load_factory()
                if inspect.isclass(f):
                    return f
    shown = repr(spec[:120]) if isinstance(spec, str) else f"a {type(spec).__name__}"
    raise KeyError(f"{shown}, which is not a registered head (known: {', '.join(names())})")


def head_parameters(name: str) -> dict[str, Any]:
    """Parameter names and defaults of a head (the top-level ones for Pipelines)."""
    f = get(name).load_factory()
    if inspect.isclass(f):
        return f().get_params(deep=False)
    sig = inspect.signature(f)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def input_builder(name: str) -> Callable:
    """The function ``build(reader, ids, feature) -> X`` of head ``name``."""
    spec = get(name).inputs
    if ":" not in spec and spec not in INPUTS:
        raise KeyError(f"head {name!r}: unknown input builder {spec!r}; known: {sorted(INPUTS)}")
    return load(INPUTS.get(spec, spec))


def accepts_views(name: str) -> bool:
    """Whether head ``name`` trains on augmented views (``fit(..., augmented_of=)``)."""
    return bool(getattr(estimator_class(name), "accepts_views", False))


def paper_view_kinds(name: str) -> set[str]:
    """The kinds (``flip``, ``shift``, ...) of head ``name``'s :attr:`HeadSpec.paper_views`."""
    from aqa.data.views import parse_views
    return {v.kind for v in parse_views(get(name).paper_views)}


def fit_extras(estimator) -> tuple[str, ...]:
    """The per-sample keywords an estimator's fit/predict accept (``()`` for plain sklearn ones)."""
    if hasattr(estimator, "steps"):
        return ()  # Pipelines route keywords by step name; none of the Pipeline heads needs them
    return tuple(getattr(estimator, "fit_extras", ()))

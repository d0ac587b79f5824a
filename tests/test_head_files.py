"""Head files from someone else: loading one never runs code from it. Neural heads name their class
out of the head registry only; non-neural heads are skops files of known types; old pickled ones
load only when trusted."""
import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from aqa.heads.base import FORMAT, HeadFormatError, TorchRegressor, load_head, save_head  # noqa: E402
from aqa.heads.cli import main  # noqa: E402
from aqa.heads.mlp import SceneMLPRegressor  # noqa: E402

from test_heads_cli import make_cache  # noqa: E402

TINY = dict(encoder_dim=8, hidden_dim=4, max_iter=30, learning_rate=1e-2, lr_schedule="constant")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("headfiles")
    make_cache(d / "feats.h5", n=12)
    return d / "feats.h5"


def _evil_head(path, marker, cls_spec="aqa.heads.jrg:torch.os.system"):
    """The attack file: a plain dict (passes torch.load(weights_only=True)) whose class names a
    callable reachable from an aqa.heads module, called with the file's params."""
    torch.save({"format": FORMAT, "format_version": 1, "kind": "torch", "class": cls_spec,
                "params_json": f'{{"command": "touch {marker}"}}', "fitted_json": "{}",
                "provenance_json": "{}", "config_json": '{"head": "mlp", "feature": "kin_pose"}',
                "state_dict": {}}, path)
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("spec", ["aqa.heads.jrg:torch.os.system", "aqa.heads.base:importlib.import_module",
                                  "os:system", "posix:system", "mlp.__class__"])
def test_crafted_class_is_refused_and_never_run(tmp_path, cache, command, spec):
    marker = tmp_path / "pwned"
    model = _evil_head(tmp_path / "evil.pt", marker, spec)
    r = CliRunner().invoke(main, [command, str(model), str(cache)])
    assert r.exit_code == 1, r.output
    assert not marker.exists(), "the payload ran"
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {model}: head file names class "), lines
    assert "not a registered head" in lines[0] and r.exception is None or isinstance(r.exception, SystemExit)


def _mlp(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3, 4).astype(np.float32)
    est = SceneMLPRegressor(**TINY, random_state=0).fit(X, X[:, :, 0].sum(1))
    return est, X, est.save(tmp_path / "m.pt", config={"head": "mlp"})


def _rewrite(src, dst, **change):
    payload = torch.load(src, weights_only=True)
    payload.update(change)
    torch.save(payload, dst)
    return dst


def test_registered_class_strings_and_names_load(tmp_path):
    est, X, p = _mlp(tmp_path)
    assert torch.load(p, weights_only=True)["class"] == "aqa.heads.mlp:SceneMLPRegressor"
    for spec in ("aqa.heads.mlp:SceneMLPRegressor", "mlp"):
        got = load_head(_rewrite(p, tmp_path / "x.pt", **{"class": spec}))
        assert type(got) is SceneMLPRegressor
        np.testing.assert_array_equal(got.predict(X), est.predict(X))
    # an exact registered class only: the SVR heads' factories are functions, not neural classes
    for spec in ("aqa.heads.svr:c3d_svr", "c3d-svr", "aqa.heads.mlp:SceneMLPRegressor.fit",
                 "aqa.heads.mlp:SceneMLPRegressor ", 7):
        with pytest.raises(HeadFormatError):
            load_head(_rewrite(p, tmp_path / "x.pt", **{"class": spec}))


@pytest.mark.parametrize("change", [
    {"fitted_json": '{"__class__": 1}'}, {"fitted_json": '{"predict": 1}'},
    {"fitted_json": '{"fit_extras": ["groups"]}'}, {"params_json": '{"command": "x"}'},
    {"params_json": "[1]"}, {"params_json": "{not json"}, {"state_dict": {"w": 1}},
    {"state_dict": {"encoder.0.weight": torch.zeros(1)}}, {"kind": "other"}, {"format_version": 99},
    {"provenance_json": 5},
    {"fitted_json": '{"y_mean_": {"__ndarray__": ["a"], "dtype": "<U2000000000", "shape": [1]}}'},
    {"fitted_json": '{"y_mean_": {"__ndarray__": [[0]], "dtype": "V8", "shape": [1]}}'},
    {"fitted_json": '{"y_mean_": {"__ndarray__": [1], "dtype": "f8,O", "shape": [1]}}'}])
def test_damaged_neural_head_files_are_one_line_errors(tmp_path, change):
    _, _, p = _mlp(tmp_path)
    with pytest.raises(HeadFormatError) as err:
        load_head(_rewrite(p, tmp_path / "bad.pt", **change))
    assert "\n" not in str(err.value) and str(tmp_path / "bad.pt") in str(err.value)


def _fitted_sklearn_heads():
    from aqa.heads import registry
    rng = np.random.RandomState(1)
    out = []
    for name in registry.names():
        if issubclass(registry.estimator_class(name), TorchRegressor):
            continue
        if name == "pose-dct-svr":
            X = rng.randn(25, 6, 17, 2)
        else:
            X = rng.randn(25, 3, 5)
        out.append((name, registry.make(name).fit(X, rng.randn(25)), X))
    return out


@pytest.mark.slow
def test_sklearn_heads_round_trip_bit_identical_without_trust(tmp_path):
    heads = _fitted_sklearn_heads()
    assert {n for n, _, _ in heads} == {"stats-ridge", "stats-gbr", "c3d-svr", "i3d-svr", "pose-dct-svr"}
    for name, est, X in heads:
        p = save_head(est, tmp_path / f"{name}.pt", config={"head": name})
        payload = torch.load(p, weights_only=True)
        assert payload["kind"] == "sklearn-skops" and "pickle" not in payload
        got = load_head(p)                              # no allow_pickle
        assert got.predict(X).tobytes() == est.predict(X).tobytes(), name
        assert got.train_config_ == {"head": name}


@pytest.mark.slow
def test_trusted_types_cover_every_sklearn_head_and_nothing_more():
    import skops.io as sio

    from aqa.heads.sklearnfile import TRUSTED_TYPES
    needed = set()
    for _, est, _ in _fitted_sklearn_heads():
        needed |= set(sio.get_untrusted_types(data=sio.dumps(est)))
    assert needed == set(TRUSTED_TYPES)


class Unknown:
    """A type skops does not trust and our heads never hold."""

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))


def _skops_head(tmp_path, est):
    import skops.io as sio
    p = tmp_path / "other.pt"
    torch.save({"format": FORMAT, "format_version": 2, "kind": "sklearn-skops", "class": "x:y",
                "provenance_json": "{}", "config_json": '{"head": "c3d-svr"}',
                "skops": torch.frombuffer(bytearray(sio.dumps(est)), dtype=torch.uint8)}, p)
    return p


@pytest.mark.parametrize("make", [
    lambda m: __import__("sklearn.preprocessing", fromlist=["x"]).FunctionTransformer(os.system, kw_args={
        "command": f"touch {m}"}),
    lambda m: __import__("sklearn.pipeline", fromlist=["x"]).Pipeline([("u", Unknown())])])
def test_skops_file_with_an_untrusted_type_is_refused(tmp_path, cache, make):
    marker = tmp_path / "pwned"
    p = _skops_head(tmp_path, make(marker))
    with pytest.raises(ValueError, match="refusing a model holding type") as err:
        load_head(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)
    r = CliRunner().invoke(main, ["predict", str(p), str(cache)])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "refusing a model holding type" in r.output and not marker.exists()


def test_old_pickled_sklearn_heads_load_only_when_trusted(tmp_path):
    name, est, X = _fitted_sklearn_heads()[0]
    p = tmp_path / "old.pt"           # the format older versions wrote
    torch.save({"format": FORMAT, "format_version": 1, "kind": "sklearn-pickle",
                "class": "sklearn.pipeline:Pipeline", "provenance_json": "{}", "config_json": "{}",
                "pickle": torch.frombuffer(bytearray(pickle.dumps(est)), dtype=torch.uint8)}, p)
    with pytest.raises(HeadFormatError, match="allow_pickle=True"):
        load_head(p)
    assert load_head(p, allow_pickle=True).predict(X).tobytes() == est.predict(X).tobytes()


@pytest.mark.slow
def test_every_neural_head_round_trips_through_the_checked_loader(tmp_path):
    # the loader admits only registered classes, known parameters, fitted names and plain dtypes:
    # every head's own file must still pass (SiameseRegressor's reference_X_ once did not)
    import warnings

    from aqa.heads import registry
    rng = np.random.RandomState(0)
    X, y = rng.randn(24, 6).astype(np.float32), rng.randn(24) * 5 + 50
    for name in registry.names():
        if not issubclass(registry.estimator_class(name), TorchRegressor):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = registry.make(name, **registry.get(name).check_params).fit(X, y)
        got = load_head(save_head(est, tmp_path / f"{name}.pt", config={"head": name}))
        assert type(got) is type(est) and got.predict(X).tobytes() == est.predict(X).tobytes(), name

"""Published Spearman correlations of the seed papers' methods, to print beside our numbers.

Every figure is copied from a table of one of the papers (source given per entry); a report shows
it only for the benchmark and action it was published for. Keys: benchmark -> head name ->
{action or "avg": rho}. Head names are the registry's; methods we have no head for are left out.
"""
from __future__ import annotations

AQA7_ACTIONS = ("diving", "gym_vault", "ski_big_air", "snowboard_big_air", "sync_diving_3m",
                "sync_diving_10m")


def _aqa7(*vals):
    return dict(zip(AQA7_ACTIONS + ("avg",), vals))


PUBLISHED: dict[str, dict[str, dict]] = {
    "aqa7": {
        # CoRe (Yu et al., ICCV 2021) Table 1; JRG (Pan et al., ICCV 2019) Table 2; AIM Table 7
        "c3d-svr": {**_aqa7(0.7902, 0.6824, 0.5209, 0.4006, 0.5937, 0.9120, 0.6937),
                    "source": "Parmar & Morris 2017, as reported in CoRe Table 1"},
        "jrg": {**_aqa7(0.7630, 0.7358, 0.6006, 0.5405, 0.9013, 0.9254, 0.7849),
                "source": "JRG (ICCV 2019) / CoRe Table 1"},
        "aim": {**_aqa7(0.7419, 0.7296, 0.5890, 0.4960, 0.9298, 0.9043, 0.7789),
                "source": "AIM (ECCV 2020) Table 7"},
        "mlp": {**_aqa7(0.8685, 0.6939, 0.5391, 0.5180, 0.8782, 0.8486, 0.7601),
                "source": "I3D+MLP, CoRe's implementation, CoRe Table 1"},
        "core": {**_aqa7(0.8824, 0.7746, 0.7115, 0.6624, 0.9442, 0.9078, 0.8401),
                 "source": "CoRe + GART (ICCV 2021) Table 1"},
        "pose-dct-svr": {"diving": 0.5300, "gym_vault": 0.1000,
                         "source": "Pirsiavash et al. 2014, as reported in CoRe Table 1"},
    },
    "mtl_aqa": {
        "c3d-svr": {"avg": 0.7716, "source": "CoRe Table 2 (w/o DD)"},
        "pose-dct-svr": {"avg": 0.2682, "source": "CoRe Table 2 (w/o DD)"},
        "mlp": {"avg": 0.9196, "avg_with_dd": 0.9381, "source": "I3D+MLP, CoRe Tables 2-3"},
        "core": {"avg": 0.9341, "avg_with_dd": 0.9512, "source": "CoRe + GART, CoRe Table 2"},
    },
    "unlv_dive": {
        "c3d-svr": {"avg": 0.78, "source": "Parmar & Morris 2017, as reported by Li et al. Table 2"},
        "pose-dct-svr": {"avg": 0.53, "source": "Pirsiavash et al., as reported by Li et al. Table 2"},
        "fragment": {"avg": 0.8009, "source": "Li, Chai, Chen (PCM 2018) Table 2, MSE+ranking"},
    },
    "jigsaws": {
        "jrg": {"suturing": 0.36, "needle_passing": 0.54, "knot_tying": 0.75, "avg": 0.57,
                "source": "JRG (ICCV 2019) Table 4"},
        "aim": {"suturing": 0.63, "needle_passing": 0.65, "knot_tying": 0.82, "avg": 0.71,
                "source": "AIM (ECCV 2020) Table 2"},
        "core": {"avg": 0.85, "source": "CoRe (ICCV 2021) Section 4.4"},
    },
    "finediving": {},
}


def _norm(action: str) -> str:
    return action.strip().lower().replace("-", "_").replace(" ", "_")


def published(benchmark: str | None, head: str, action: str = "avg", with_dd: bool = False):
    """The published rho of ``head`` on ``benchmark``/``action``, or None (with its source)."""
    entry = PUBLISHED.get(benchmark or "", {}).get(head)
    if not entry:
        return None, None
    key = "avg_with_dd" if with_dd and action == "avg" and "avg_with_dd" in entry else _norm(action)
    return entry.get(key), entry.get("source")

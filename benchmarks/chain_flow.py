"""The drop view's flow across a gap: chained pair flows, against the true motion and against
TV-L1 run on the gap itself.

    python benchmarks/chain_flow.py [--section truth|vtest|both] [--gaps 1,2,3,4,6]
        [--size 192x144] [--photo building.jpg] [--speed 1] [--truth-starts 0,3,6]
        [--vtest-starts 0,20,40,60] [--json]

``truth``: a sequence rendered from opencv-doc photos with known motion, so every flow has a
ground truth. The camera pans (1.5, -0.8) px per frame, accelerating by (0.1, 0.05) px per frame,
rotates 0.6 degrees and zooms 1% per frame over ``--photo``; an elliptical sprite cut from
messi5.jpg (about 60x44 px) crosses it at (3, -1) px per frame, turning 2 degrees per frame, so
there are occlusion edges; each frame gets Gaussian noise (sigma 1 grey level). ``--speed``
scales every motion. For each start s and gap g: TV-L1 (OpenCV's defaults, ``tvl1-cpu``) on the
pairs s -> s+1 ... s+g-1 -> s+g, then ``chain_flow`` of those (what a ``drop`` view stores), the
plain sum of them, ``chain_flow`` of the true pair flows (the error of chaining itself), and
TV-L1 run on frames s -> s+g directly (what recomputing would give). Printed per gap, means over
the starts: the mean end-point error of each against the true flow of s -> s+g, on the pixels of
frame s still visible in frame s+g, and on the sprite alone.

``vtest``: on consecutive frames of opencv-doc's vtest.avi (people walking, fixed camera), the
same flows without a ground truth: the median end-point error of chain and sum against direct
on the moving pixels (direct flow > 0.5 px), the photometric error of each (mean |frame s+g
warped back - frame s|, zero flow for scale), and the seconds of chaining against those of one
direct TV-L1 run, side by side. TV-L1 minimises the photometric error, so it favours direct
there; the truth section says which flow is closer to the motion.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


SPRITE = (80, 60)            # texture size (w, h); the ellipse has semi-axes 30 x 22 inside it
MARGIN = 48                  # photo pixels around the first frame's view


def _rotation(deg: float) -> np.ndarray:
    r = np.deg2rad(deg)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


def _affine(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = a, t
    return m


class Scene:
    """A rendered sequence with known motion: frame t shows the photo through ``camera(t)`` and,
    on top, the sprite texture through ``sprite(t)`` where it falls inside its ellipse. Both maps
    take frame pixels to source pixels (3x3 homogeneous), so the true flow of frame a -> c is
    ``camera(c)^-1 camera(a)`` on the background and ``sprite(c)^-1 sprite(a)`` on the sprite."""

    def __init__(self, photo: np.ndarray, texture: np.ndarray, w: int, h: int, speed: float,
                 noise: float = 1.0, seed: int = 0):
        import cv2

        self.w, self.h, self.speed, self.noise = w, h, speed, noise
        self.photo = cv2.resize(photo, (w + 2 * MARGIN, h + 2 * MARGIN),
                                interpolation=cv2.INTER_AREA).astype(np.float32)
        self.texture = cv2.resize(texture, SPRITE, interpolation=cv2.INTER_AREA).astype(np.float32)
        self.rng = np.random.default_rng(seed)
        self.gy, self.gx = np.mgrid[0:h, 0:w].astype(np.float64)

    def camera(self, t: float) -> np.ndarray:
        t = t * self.speed
        c = np.array([self.w / 2, self.h / 2])
        a = (1.0 - 0.01 * t) * _rotation(0.6 * t)
        d = np.array([1.5, -0.8]) * t + 0.5 * np.array([0.1, 0.05]) * t * t
        return _affine(a, c + MARGIN + d - a @ c)

    def sprite(self, t: float) -> np.ndarray:
        t = t * self.speed
        centre = np.array([0.26 * self.w + 3.0 * t, 0.55 * self.h - 1.0 * t])
        a = _rotation(-2.0 * t)
        return _affine(a, np.array(SPRITE) / 2 - a @ centre)

    def _map(self, m: np.ndarray):
        return (m[0, 0] * self.gx + m[0, 1] * self.gy + m[0, 2],
                m[1, 0] * self.gx + m[1, 1] * self.gy + m[1, 2])

    def on_sprite(self, t: float) -> np.ndarray:
        u, v = self._map(self.sprite(t))
        return ((u - SPRITE[0] / 2) / 30) ** 2 + ((v - SPRITE[1] / 2) / 22) ** 2 <= 1

    def frame(self, t: int) -> np.ndarray:
        import cv2

        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        bg = cv2.warpAffine(self.photo, self.camera(t)[:2], (self.w, self.h), flags=flags,
                            borderMode=cv2.BORDER_REFLECT)
        fg = cv2.warpAffine(self.texture, self.sprite(t)[:2], (self.w, self.h), flags=flags,
                            borderMode=cv2.BORDER_REFLECT)
        img = np.where(self.on_sprite(t), fg, bg) + self.rng.normal(0, self.noise, bg.shape)
        return np.clip(np.round(img), 0, 255).astype(np.uint8)

    def truth(self, a: int, c: int):
        """(flow a -> c (H, W, 2), pixels of a visible in c, those of them on the sprite)."""
        on = self.on_sprite(a)
        bx, by = self._map(np.linalg.inv(self.camera(c)) @ self.camera(a))
        sx, sy = self._map(np.linalg.inv(self.sprite(c)) @ self.sprite(a))
        x2, y2 = np.where(on, sx, bx), np.where(on, sy, by)
        inside = (x2 >= 0) & (x2 <= self.w - 1) & (y2 >= 0) & (y2 <= self.h - 1)
        xi = np.clip(np.round(x2).astype(int), 0, self.w - 1)
        yi = np.clip(np.round(y2).astype(int), 0, self.h - 1)
        hidden = ~on & self.on_sprite(c)[yi, xi]
        flow = np.stack([x2 - self.gx, y2 - self.gy], -1).astype(np.float32)
        return flow, inside & ~hidden, inside & on


def truth_rows(tvl1, scene: Scene, gaps, starts) -> list[dict]:
    """Per gap, the mean end-point errors against the true flow (see the module docstring)."""
    from aqa.extract.views import chain_flow

    frames = np.stack([scene.frame(t) for t in range(max(starts) + max(gaps) + 1)])
    pairs_all = tvl1.compute(frames[:-1], frames[1:])
    rows = []
    for g in gaps:
        acc: dict[str, list] = {}
        for s in starts:
            gt, visible, sprite = scene.truth(s, s + g)
            pairs = pairs_all[s:s + g]
            true_pairs = np.stack([scene.truth(s + k, s + k + 1)[0] for k in range(g)])
            flows = {"direct": pairs[0] if g == 1 else tvl1.compute(frames[s:s + 1],
                                                                    frames[s + g:s + g + 1])[0],
                     "chain": chain_flow(pairs), "sum": pairs.sum(0),
                     "chain_true": chain_flow(true_pairs)}
            for name, f in flows.items():
                err = np.linalg.norm(f - gt, axis=-1)
                acc.setdefault(f"epe_{name}", []).append(float(err[visible].mean()))
                acc.setdefault(f"epe_{name}_sprite", []).append(float(err[sprite].mean()))
            acc.setdefault("motion", []).append(float(np.linalg.norm(gt, axis=-1)[visible].mean()))
        rows.append({"gap": g, **{k: float(np.mean(v)) for k, v in acc.items()}})
    return rows


def vtest_rows(tvl1, frames: list, gaps, starts) -> list[dict]:
    """Per gap, chain and sum against direct TV-L1 on vtest.avi (see the module docstring)."""
    import cv2

    from aqa.extract.views import chain_flow

    h, w = frames[0].shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)

    def photometric(a, b, f):
        back = cv2.remap(b.astype(np.float32), gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        return float(np.abs(back - a).mean())

    rows = []
    for g in gaps:
        acc: dict[str, list] = {}
        for s in starts:
            seq = np.stack(frames[s:s + g + 1])
            pairs = tvl1.compute(seq[:-1], seq[1:])
            t0 = time.perf_counter()
            chained = chain_flow(pairs)
            t_chain = time.perf_counter() - t0
            t0 = time.perf_counter()
            direct = tvl1.compute(seq[:1], seq[-1:])[0]
            t_direct = time.perf_counter() - t0
            moving = np.linalg.norm(direct, axis=-1) > 0.5
            for name, f in (("chain", chained), ("sum", pairs.sum(0))):
                acc.setdefault(f"epe_{name}", []).append(
                    float(np.median(np.linalg.norm(f - direct, axis=-1)[moving])))
            for name, f in (("direct", direct), ("chain", chained), ("sum", pairs.sum(0)),
                            ("zero", np.zeros_like(direct))):
                acc.setdefault(f"photo_{name}", []).append(photometric(seq[0], seq[-1], f))
            acc.setdefault("motion", []).append(
                float(np.median(np.linalg.norm(direct, axis=-1)[moving])))
            acc.setdefault("s_chain", []).append(t_chain)
            acc.setdefault("s_direct", []).append(t_direct)
        rows.append({"gap": g, **{k: float(np.mean(v)) for k, v in acc.items()}})
    return rows


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--section", choices=("truth", "vtest", "both"), default="both")
    ap.add_argument("--gaps", default="1,2,3,4,6", help="gaps in frames (vtest skips gap 1)")
    ap.add_argument("--size", default="192x144", help="WIDTHxHEIGHT of the frames")
    ap.add_argument("--photo", default="building.jpg", help="opencv-doc photo behind the sprite")
    ap.add_argument("--speed", type=float, default=1.0, help="scales every motion of the scene")
    ap.add_argument("--truth-starts", default="0,3,6")
    ap.add_argument("--vtest-starts", default="0,20,40,60")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from media import opencv_sample

    from aqa.extract.flow import get_flow_backend

    gaps = _ints(args.gaps)
    w, h = (int(v) for v in args.size.split("x"))
    tvl1 = get_flow_backend("tvl1-cpu")
    out: dict = {"size": [w, h]}

    def gray(name):
        return cv2.cvtColor(cv2.imread(str(opencv_sample(name))), cv2.COLOR_BGR2GRAY)

    if args.section in ("truth", "both"):
        texture = gray("messi5.jpg")[60:300, 180:500]          # the player, with some pitch
        scene = Scene(gray(args.photo), texture, w, h, args.speed)
        out["truth"] = {"photo": args.photo, "speed": args.speed,
                        "starts": _ints(args.truth_starts),
                        "rows": truth_rows(tvl1, scene, gaps, _ints(args.truth_starts))}
    if args.section in ("vtest", "both"):
        starts = _ints(args.vtest_starts)
        vgaps = [g for g in gaps if g >= 2]
        cap = cv2.VideoCapture(str(opencv_sample("vtest.avi")))
        frames = []
        for _ in range(max(starts) + max(vgaps) + 1):
            ok, f = cap.read()
            if not ok:
                raise SystemExit("vtest.avi has fewer frames than --vtest-starts and --gaps need")
            frames.append(cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (w, h),
                                     interpolation=cv2.INTER_AREA))
        out["vtest"] = {"starts": starts, "rows": vtest_rows(tvl1, frames, vgaps, starts)}
    if args.json:
        print(json.dumps(out))
        return 0
    if "truth" in out:
        t = out["truth"]
        print(f"Known motion over {t['photo']} at {w}x{h} (speed {t['speed']:g}), starts "
              f"{t['starts']}: mean end-point error (px) against the true flow, on the pixels "
              f"still visible / on the sprite")
        names = ("direct", "chain", "sum", "chain_true")
        heads = ("direct TV-L1", "chained", "sum", "chained truth")
        print(f"{'gap':>4}{'motion px':>11}" + "".join(f"{h:>16}" for h in heads))
        for r in t["rows"]:
            cells = "".join(f"{r[f'epe_{n}']:>8.2f} / {r[f'epe_{n}_sprite']:<5.2f}"
                            for n in names)
            print(f"{r['gap']:>4}{r['motion']:>11.2f}{cells}".rstrip())
    if "vtest" in out:
        v = out["vtest"]
        print(f"vtest.avi at {w}x{h}, starts {v['starts']}, OpenCV TV-L1 defaults; means over "
              f"the starts; EPE against direct TV-L1")
        print(f"{'gap':>4}{'motion px':>11}{'EPE chain':>11}{'EPE sum':>9}{'photo direct':>14}"
              f"{'chain':>7}{'sum':>7}{'zero':>7}{'s chain':>10}{'s TV-L1':>9}{'ratio':>8}")
        for r in v["rows"]:
            print(f"{r['gap']:>4}{r['motion']:>11.2f}{r['epe_chain']:>11.3f}{r['epe_sum']:>9.3f}"
                  f"{r['photo_direct']:>14.2f}{r['photo_chain']:>7.2f}{r['photo_sum']:>7.2f}"
                  f"{r['photo_zero']:>7.2f}{r['s_chain']:>10.4f}{r['s_direct']:>9.3f}"
                  f"{r['s_direct'] / r['s_chain']:>7.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

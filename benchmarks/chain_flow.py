"""The drop view's flow across a gap: chained pair flows against TV-L1 run on the gap itself.

    python benchmarks/chain_flow.py [--gaps 2,3,4] [--starts 0,20,40,60] [--size 192x144]

On consecutive frames of opencv-doc's vtest.avi (people walking), for each start frame s and gap
g: TV-L1 (OpenCV's defaults, ``tvl1-cpu``) on the pairs s -> s+1 ... s+g-1 -> s+g, then
``chain_flow`` of those (what a ``drop`` view stores), the plain sum of them, and TV-L1 on the
frames s -> s+g directly (what recomputing would give). Printed per gap, means over the starts:
the median end-point error of chain and sum against direct on the moving pixels (direct flow
> 0.5 px), the photometric error of each (mean |frame s+g warped back - frame s|, zero flow for
scale), and the seconds of chaining against those of one direct TV-L1 run, side by side.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gaps", default="2,3,4")
    ap.add_argument("--starts", default="0,20,40,60")
    ap.add_argument("--size", default="192x144", help="WIDTHxHEIGHT the frames are resized to")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from media import opencv_sample

    from aqa.extract.flow import get_flow_backend
    from aqa.extract.views import chain_flow

    gaps = [int(g) for g in args.gaps.split(",")]
    starts = [int(s) for s in args.starts.split(",")]
    w, h = (int(v) for v in args.size.split("x"))
    cap = cv2.VideoCapture(str(opencv_sample("vtest.avi")))
    frames = []
    for _ in range(max(starts) + max(gaps) + 1):
        ok, f = cap.read()
        if not ok:
            raise SystemExit("vtest.avi has fewer frames than --starts and --gaps need")
        frames.append(cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (w, h),
                                 interpolation=cv2.INTER_AREA))
    tvl1 = get_flow_backend("tvl1-cpu")
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
    if args.json:
        print(json.dumps({"size": [w, h], "starts": starts, "rows": rows}))
        return 0
    print(f"vtest.avi at {w}x{h}, starts {starts}, OpenCV TV-L1 defaults; means over the starts")
    print(f"{'gap':>4}{'motion px':>11}{'EPE chain':>11}{'EPE sum':>9}{'photo direct':>14}"
          f"{'chain':>7}{'sum':>7}{'zero':>7}{'s chain':>10}{'s TV-L1':>9}{'ratio':>8}")
    for r in rows:
        print(f"{r['gap']:>4}{r['motion']:>11.2f}{r['epe_chain']:>11.3f}{r['epe_sum']:>9.3f}"
              f"{r['photo_direct']:>14.2f}{r['photo_chain']:>7.2f}{r['photo_sum']:>7.2f}"
              f"{r['photo_zero']:>7.2f}{r['s_chain']:>10.4f}{r['s_direct']:>9.3f}"
              f"{r['s_direct'] / r['s_chain']:>7.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

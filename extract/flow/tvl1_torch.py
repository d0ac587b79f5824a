"""``tvl1-torch``: batched dual TV-L1 optical flow in PyTorch (CUDA or CPU).

The algorithm is Zach, Pock & Bischof (2007) with Wedel et al.'s (2009) median filtering, in the form of
Sanchez Perez, Meinhardt-Llopis & Facciolo (IPOL 2013) as implemented by OpenCV's ``DualTVL1`` (contrib
``optflow``). To agree with OpenCV to a fraction of a pixel it mirrors OpenCV's numerical conventions:

- intensities in [0, 255]; pyramid by bilinear ``resize`` with factor ``scale_step`` (no pre-smoothing,
  output size rounded, half-pixel centres, edge clamping), levels smaller than 16 px dropped;
- the coarsest level starts from zero flow; each finer level starts from the bilinearly resized flow / step;
- the image gradient of I1 is the centred difference with replicated borders, warped together with I1
  by bicubic interpolation (a = -0.75) at coordinates rounded to 1/32 px, with zero outside the frame
  (``cv2.remap(..., INTER_CUBIC)``, ``BORDER_CONSTANT``);
- per warp: thresholding step with ``rho``, divergence by backward differences (zero outside), forward
  differences (zero at the last row/column) for the flow gradient, the projected dual update, and a 5x5
  median of the flow (replicated borders, by comparator networks: ``median.py``) at the start of every
  outer iteration;
- stopping: per pair, the sum over pixels of the squared flow update must exceed
  ``epsilon^2 * area`` to go on (checked after each inner iteration, reset at every warp).

Each pair in a batch keeps its own stopping state (a mask), so batched and one-by-one results agree;
pairs that have stopped are dropped from the working set, so a batch costs what its pairs need.
The inner iteration and the median filter are pure functions of tensors, compiled with ``torch.compile``
on CUDA to fuse their element-wise work (the 5x5 median's 164 min/max become one kernel: x1.5 on the CPU
over compiling the inner iteration alone, ``benchmarks/tvl1_compile.py``); every pyramid level stays on
the device.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable

import numpy as np

from .base import FlowBackend, TVL1Params
from .median import apply_median, median_network, sorting_network

_FLT_EPS = float(np.finfo(np.float32).eps)
_TAB = 32  # OpenCV's INTER_TAB_SIZE: remap coordinates are rounded to 1/32 px


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(H, W) of each pyramid level as OpenCV computes them (rounded sizes, stop below 16 px)."""
    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        nh, nw = int(round(h * params.scale_step)), int(round(w * params.scale_step))
        if nh < 16 or nw < 16:
            break
        sizes.append((nh, nw))
    return sizes


def _linear_axis(n_in: int, n_out: int, scale: float, device):
    """Source indices and weights of OpenCV's bilinear resize along one axis (half-pixel centres, clamp)."""
    import torch

    pos = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * scale - 0.5
    i0 = torch.floor(pos)
    frac = (pos - i0).to(torch.float32)
    i0 = i0.long()
    below = i0 < 0
    frac = torch.where(below, torch.zeros_like(frac), frac)
    i0 = torch.where(below, torch.zeros_like(i0), i0)
    above = i0 >= n_in - 1
    frac = torch.where(above, torch.zeros_like(frac), frac)
    i0 = torch.where(above, torch.full_like(i0, n_in - 1), i0)
    i1 = torch.clamp(i0 + 1, max=n_in - 1)
    return i0, i1, frac


def resize_linear(x, out_hw: tuple[int, int], scale_yx: tuple[float, float] | None = None):
    """Bilinear resize of (..., H, W) like ``cv2.resize(INTER_LINEAR)`` on float data.

    ``scale_yx`` is the source step per output pixel; OpenCV uses ``1 / fx`` when called with a factor and
    ``H_in / H_out`` when called with a size (the default here).
    """
    h, w = x.shape[-2:]
    oh, ow = out_hw
    sy, sx = scale_yx if scale_yx is not None else (h / oh, w / ow)
    y0, y1, fy = _linear_axis(h, oh, sy, x.device)
    x0, x1, fx = _linear_axis(w, ow, sx, x.device)
    rows = x.index_select(-1, x0) * (1 - fx) + x.index_select(-1, x1) * fx
    fy = fy[:, None]
    return rows.index_select(-2, y0) * (1 - fy) + rows.index_select(-2, y1) * fy


def remap_cubic(img, map_x, map_y):
    """Sample ``img`` (B,C,H,W) at ``(map_x, map_y)`` (B,H,W) like ``cv2.remap(INTER_CUBIC)``; the result
    has the maps' dtype.

    Coordinates are rounded to 1/32 px as OpenCV does; the taps and weights are then OpenCV's (Keys'
    kernel with a = -0.75, taps outside the image read 0: ``BORDER_CONSTANT``), which is what
    ``grid_sample(mode="bicubic", padding_mode="zeros")`` computes in one op on any device. It runs in
    float64 (pass ``img`` as float64 to convert it once for many calls): grid_sample's normalised
    float32 grid would move points by ~1e-5 px, and TV-L1's iteration amplifies such noise into flow
    differences of 1e-3 px (benchmarks/tvl1.py's EPE to OpenCV rose from 0.011 to 0.014 px).
    """
    import torch
    import torch.nn.functional as F

    _, _, h, w = img.shape
    gx = torch.round(map_x.double() * _TAB) * (2.0 / (_TAB * max(w - 1, 1))) - 1.0
    gy = torch.round(map_y.double() * _TAB) * (2.0 / (_TAB * max(h - 1, 1))) - 1.0
    out = F.grid_sample(img.double(), torch.stack([gx, gy], dim=-1), mode="bicubic", padding_mode="zeros",
                        align_corners=True)
    return out.to(map_x.dtype)


def warp_data(stack, u, grid_x, grid_y, i0):
    """The data term of one warp: I1 and its gradient (``stack``, (B,3,H,W)) sampled at x + u, their
    squared gradient norm inverted (0 where below FLT_EPSILON) and the linearised residual at u = 0.
    Returns (gx, gy, inv_grad, rho_c), each (B,H,W)."""
    import torch

    warped = remap_cubic(stack, grid_x + u[:, 0], grid_y + u[:, 1])
    i1w, gx, gy = warped[:, 0], warped[:, 1], warped[:, 2]
    grad = gx * gx + gy * gy
    inv_grad = torch.where(grad > _FLT_EPS, 1.0 / grad.clamp_min(_FLT_EPS), torch.zeros_like(grad))
    rho_c = i1w - gx * u[:, 0] - gy * u[:, 1] - i0
    return gx, gy, inv_grad, rho_c


def centered_gradient(x):
    """Centred differences (x[i+1] - x[i-1]) / 2 with replicated borders, of (B,H,W): (dx, dy)."""
    import torch.nn.functional as F

    p = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return dx, dy


def _forward_diff(u):
    """Forward differences of (..., H, W), zero at the last column / row (OpenCV's forwardGradient)."""
    import torch.nn.functional as F

    ux = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1))
    uy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return ux, uy


def _divergence(px, py):
    """Backward-difference divergence with zero outside (OpenCV's divergence), (..., H, W)."""
    import torch.nn.functional as F

    dx = px - F.pad(px[..., :, :-1], (1, 0))
    dy = py - F.pad(py[..., :-1, :], (0, 0, 1, 0))
    return dx + dy


def inner_step(u, px, py, gx, gy, inv_grad, rho_c, active, l_t: float, theta: float, taut: float,
               gamma: float, eps):
    """One TV-L1 inner iteration for a batch; pairs with ``active`` False keep their state.

    ``u`` (B,K,H,W) is the flow (K = 2, or 3 with the illumination term when gamma > 0), ``px, py``
    (B,K,H,W) the dual variables, ``gx, gy`` (B,H,W) the warped gradient of I1, ``inv_grad`` =
    1 / (gx^2 + gy^2) (0 where that is below float32 epsilon), ``rho_c`` the constant part of the
    linearised residual, ``eps`` the stopping threshold (a 0-d tensor, so that compiled code does not
    specialise on its value). Returns (u, px, py, active).

    The thresholding step is OpenCV's three-case rule written as one clamp: the step along the gradient is
    ``clamp(-rho / |grad|^2, -lambda*theta, lambda*theta)``. (Where |grad|^2 < float32 epsilon OpenCV may
    still take a +-lambda*theta step, but that moves the flow by < 2e-5 px, so it is dropped here.)
    """
    import torch

    rho = rho_c + gx * u[:, 0] + gy * u[:, 1]
    if gamma != 0:
        rho = rho + gamma * u[:, 2]
    coef = torch.clamp(-rho * inv_grad, -l_t, l_t)
    comps = [coef * gx, coef * gy]
    if gamma != 0:
        comps.append(coef * gamma)
    new_u = u + torch.stack(comps, dim=1) + theta * _divergence(px, py)
    err = (new_u - u).square().sum(dim=(1, 2, 3))
    ux, uy = _forward_diff(new_u)
    ng = 1.0 + taut * torch.sqrt(ux * ux + uy * uy)
    new_px = (px + taut * ux) / ng
    new_py = (py + taut * uy) / ng
    a = active[:, None, None, None]
    u = torch.where(a, new_u, u)
    px = torch.where(a, new_px, px)
    py = torch.where(a, new_py, py)
    active = active & (err > eps)
    return u, px, py, active


def median_step(u, active, k: int, column_sort, selection):
    """The start of an outer iteration: the k x k median of the flow (u1, u2) of the pairs still
    iterating; u3 and stopped pairs unchanged. The networks are arguments so that it compiles."""
    import torch

    med = apply_median(u[:, :2], k, column_sort, selection)
    return torch.cat([torch.where(active[:, None, None, None], med, u[:, :2]), u[:, 2:]], 1)


class TorchTVL1(FlowBackend):
    """Batched dual TV-L1 in PyTorch; see the module docstring for the conventions it shares with OpenCV.

    Options: ``device`` (default CUDA when available, else CPU); ``compile`` (``"auto"``: compile the
    :attr:`compiled_parts` with ``torch.compile`` on CUDA only; True/False to force); ``check_every``: how
    many inner iterations run between host-side checks that some pair is still iterating (default 1 on
    the CPU, 10 on CUDA; results do not depend on it, finished pairs are masked).
    """

    name = "tvl1-torch"
    default_batch_size = 8
    #: the parts ``compile`` compiles: the inner iteration and the median filter;
    #: the warp ("warp": bicubic grid_sample + data term) ran x1.8 slower compiled on the CPU, so it runs
    #: eager until a GPU measurement says otherwise (``benchmarks/tvl1_compile.py``)
    compiled_parts: tuple[str, ...] = ("step", "median")

    def __init__(self, params: TVL1Params | None = None, device: str | None = None,
                 batch_size: int | None = None, compile: bool | str = "auto",
                 check_every: int | None = None) -> None:
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"tvl1-torch: device {device!r} requested but CUDA is not available")
        super().__init__(params, str(dev), batch_size)
        self.torch_device = dev
        if compile not in ("auto", True, False):
            raise ValueError(f"compile must be 'auto', True or False, got {compile!r}")
        self.compile = (dev.type == "cuda") if compile == "auto" else bool(compile)
        if check_every is None:
            check_every = 10 if dev.type == "cuda" else 1
        if int(check_every) != check_every or check_every < 1:
            raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
        self.check_every = int(check_every)
        self._compiled: dict[str, Callable] = {}  # name -> the function, compiled when self.compile

    def _auto_batch_size(self, height: int, width: int) -> int:
        import torch

        if self.torch_device.type != "cuda":
            return self.default_batch_size
        free, _ = torch.cuda.mem_get_info(self.torch_device)
        per_pair = height * width * 4 * 160  # ~160 float32 per full-res pixel: pyramid, state, temporaries
        return int(max(1, min(1024, 0.6 * free // per_pair)))

    def _get_compiled(self, name: str, fn: Callable) -> Callable:
        """``fn`` under ``torch.compile`` when ``self.compile`` and ``name`` is one of
        :attr:`compiled_parts` (compiled once per backend), else ``fn``. A part whose compilation
        fails (no working Triton or C++ toolchain, a PyTorch whose compiler rejects it) runs eager
        from then on, with a warning that names the error: slower, the same flow."""
        if name not in self._compiled:
            if self.compile and name in self.compiled_parts:
                fn = self._compiled_or_eager(name, fn)
            self._compiled[name] = fn
        return self._compiled[name]

    def _compiled_or_eager(self, name: str, fn: Callable) -> Callable:
        import torch

        # dynamic=None: the first shape compiles static, later pyramid levels / batch sizes reuse one
        # shape-generic graph instead of hitting dynamo's recompile limit
        current = [torch.compile(fn, dynamic=None, fullgraph=True)]  # fn once compiling failed

        def run(*args, **kwargs):
            if current[0] is fn:
                return fn(*args, **kwargs)
            try:
                return current[0](*args, **kwargs)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - compiler failures come as many types

                first = (str(e).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"tvl1-torch: torch.compile of {name!r} failed on {self.device} "
                              f"({type(e).__name__}: {first}); it runs eager (slower, the same flow)",
                              RuntimeWarning, stacklevel=2)
                current[0] = fn
                return fn(*args, **kwargs)

        return run

    def _get_median(self) -> Callable:
        """``median_step(u, active)`` with this backend's window."""
        k = self.params.median_filtering
        return self._get_compiled("median", functools.partial(
            median_step, k=k, column_sort=sorting_network(k), selection=median_network(k)))

    def _compute_gray(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import torch

        scale = 1.0 if a.dtype == np.uint8 else 255.0
        with torch.no_grad():
            i0 = torch.from_numpy(a).to(self.torch_device).float() * scale
            i1 = torch.from_numpy(b).to(self.torch_device).float() * scale
            flow = self.flow_tensor(i0, i1)
        return flow.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def flow_tensor(self, i0, i1):
        """Flow for gray tensors (B,H,W) float32 in [0, 255] on the device: (B,2,H,W), channels (dx, dy)."""
        import torch

        p = self.params
        if i0.shape != i1.shape or i0.ndim != 3:
            raise ValueError(f"expected two (B,H,W) tensors of one shape, got {tuple(i0.shape)}, {tuple(i1.shape)}")
        b, h, w = i0.shape
        sizes = pyramid_sizes(h, w, p)
        inv = 1.0 / p.scale_step
        i0s, i1s = [i0], [i1]
        for s in range(1, len(sizes)):
            i0s.append(resize_linear(i0s[-1], sizes[s], (inv, inv)))
            i1s.append(resize_linear(i1s[-1], sizes[s], (inv, inv)))
        k = 3 if p.gamma != 0 else 2
        u = torch.zeros(b, k, *sizes[-1], device=i0.device, dtype=torch.float32)
        for s in range(len(sizes) - 1, -1, -1):
            u = self._one_scale(i0s[s], i1s[s], u)
            if s == 0:
                break
            u = resize_linear(u, sizes[s - 1])
            u[:, :2] *= inv  # the illumination term (u3) is not scaled
        return u[:, :2]

    def _one_scale(self, i0, i1, u):
        import torch

        p = self.params
        b, h, w = i0.shape
        eps = torch.tensor(float(np.float32(p.epsilon * p.epsilon * h * w)), device=i0.device)
        l_t = float(np.float32(p.lambda_ * p.theta))
        taut = float(np.float32(p.tau / p.theta))
        theta = float(np.float32(p.theta))
        gamma = float(np.float32(p.gamma))
        ix, iy = centered_gradient(i1)
        stack = torch.stack([i1, ix, iy], dim=1).double()  # sampled in float64 by every warp
        gy_, gx_ = torch.meshgrid(torch.arange(h, device=i0.device, dtype=torch.float32),
                                  torch.arange(w, device=i0.device, dtype=torch.float32), indexing="ij")
        px = torch.zeros_like(u)
        py = torch.zeros_like(u)
        warp = self._get_compiled("warp", warp_data)
        for _ in range(p.warps):
            u, px, py = self._iterate_warp(u, px, py, warp(stack, u, gx_, gy_, i0),
                                           (l_t, theta, taut, gamma, eps))
        return u

    def _iterate_warp(self, u, px, py, data, consts):
        """The outer/inner iterations of one warp for a batch; returns (u, px, py).

        A pair that meets the stopping rule keeps its state from then on, so once at least an eighth of
        the rows being iterated have stopped they are dropped from the working set (written back to the
        full batch first): a batch costs the iterations each pair needs, not the slowest pair's count
        times the batch size. Results are those of the masked iteration on the full batch.
        """
        import torch

        p = self.params
        step = self._get_compiled("step", inner_step)
        rows = None  # full-batch index of each working row; None while the working set is the batch
        out = (u, px, py)
        active = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
        n_active = u.shape[0]
        for _outer in range(p.outer_iterations):
            if p.median_filtering > 1:
                u = self._get_median()(u, active)
            n = 0
            while n < p.inner_iterations:
                for _ in range(min(self.check_every, p.inner_iterations - n)):
                    u, px, py, active = step(u, px, py, *data, active, *consts)
                    n += 1
                n_active = int(active.sum())  # the one host sync per check_every iterations
                if n_active == 0:
                    break
                if active.numel() - n_active >= max(1, active.numel() // 8):
                    if rows is None:  # the step's outputs are fresh tensors: they become the full batch
                        rows = torch.arange(active.numel(), device=u.device)
                        out = (u, px, py)
                    else:
                        for dst, src in zip(out, (u, px, py)):
                            dst.index_copy_(0, rows, src)
                    keep = active.nonzero().squeeze(1)
                    rows = rows[keep]
                    u, px, py = u[keep], px[keep], py[keep]
                    data = tuple(t[keep] for t in data)
                    active = active[keep]
            if n_active == 0:
                break
        if rows is None:
            return u, px, py
        for dst, src in zip(out, (u, px, py)):
            dst.index_copy_(0, rows, src)
        return out

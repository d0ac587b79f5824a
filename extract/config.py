"""The extraction config and the checks of the run's options, before any video is read.

:class:`ExtractConfig` holds everything that changes the cached values (its hash drives the resume
rule) and validates itself; :func:`resolve_flow` says which flow backend ``--flow auto`` stands for
on a device; :func:`resolve_device` checks ``--device`` against this machine. A bad option value is
an :class:`OptionError` naming the command-line option, raised once, not once per video.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

from .registry import BACKBONES, STREAMS
from .video import resized_size

#: default short side of the frames fed to pose, flow and backbones (the Kinetics I3D convention)
DEFAULT_SHORT_SIDE = 256
#: ``--backbone-opt`` keys whose value is a count of pixels, frames or classes (``resize`` also
#: takes a [height, width] pair)
COUNT_BACKBONE_OPTIONS = ("crop_size", "resize", "clip_len", "num_classes")


@dataclass
class ExtractConfig:
    """Everything that changes the cached values; its hash drives the resume rule.

    ``device`` and ``batch_size`` are run options, not config: they do not change what is cached
    beyond floating-point noise.
    """

    sampling: str = "jrg"
    sampling_options: dict = field(default_factory=dict)
    pose: str = "file"
    pose_options: dict = field(default_factory=dict)
    persons: int = 1
    flow: str = "auto"                       # tvl1-cpu | tvl1-torch | auto (per device) | none
    flow_options: dict = field(default_factory=dict)
    weightfree: bool = True
    backbones: tuple = ()                    # names in aqa.extract.registry.BACKBONES
    backbone_options: dict = field(default_factory=dict)  # e.g. crop_size, resize, clip_len
    streams: tuple = ("rgb", "flow")
    joints: bool = True                      # backbone features on joint patches too
    patch_scale: float = 0.25
    frame_height: int | None = None          # resize decoded frames to exactly this height
    short_side: int | str | None = "auto"    # downscale to this short side; see __post_init__
    camera_band: float = 0.1

    def __post_init__(self):
        """Validate, and resolve ``short_side="auto"``: :data:`DEFAULT_SHORT_SIDE` (the Kinetics I3D
        frame size that the flow clipping to [-20, 20] px assumes) whenever flow (``hof_flow``, a
        flow stream) or a backbone is computed, unless ``frame_height`` is set; ``None``/0 keeps
        the source resolution. The resolved value is part of the config and so of its hash."""
        self.backbones = tuple(self.backbones)
        self.streams = tuple(self.streams)
        if self.short_side == "auto":
            uses_flow_or_backbone = self.backbones or (self.weightfree and self.needs_flow)
            self.short_side = (DEFAULT_SHORT_SIDE if uses_flow_or_backbone
                               and self.frame_height is None else None)
        self.short_side = self.short_side or None
        resized_size(1, 1, self.frame_height, self.short_side)  # bad or conflicting sizes fail here
        bad = [b for b in self.backbones if b not in BACKBONES]
        if bad:
            raise ValueError(f"unknown backbone(s) {bad}; choose from {list(BACKBONES.names())}")
        self.backbones = tuple(BACKBONES.canonical(b) for b in self.backbones)  # old spellings warn
        bad = [s for s in self.streams if s not in STREAMS]
        if bad:
            raise ValueError(f"unknown stream(s) {bad}; choose rgb and/or flow")
        if self.persons not in (1, 2):
            raise ValueError(f"persons must be 1 or 2, got {self.persons}")
        for b in self.backbones:
            if not set(self.streams) & set(BACKBONES.get(b).streams):
                raise ValueError(f"backbone {b!r} has only the {BACKBONES.get(b).streams} stream(s); "
                                 f"--streams is {','.join(self.streams)}")
        if "c3d" in self.backbones and int(self.sampling_options.get("length", 16)) != 16:
            raise ValueError("C3D takes 16-frame clips (its fc6 is fixed): sampling length must be 16")
        if not self.weightfree and not self.backbones:
            raise ValueError("nothing to extract: no backbone and weight-free features disabled")
        if self.flow == "none" and "flow" in self.streams and any(
                "flow" in BACKBONES.get(b).streams for b in self.backbones):
            raise ValueError("flow 'none': the backbones' flow stream reads flow; use --streams rgb")

    def backbone_streams(self) -> list[tuple[str, str]]:
        """(backbone, stream) pairs to run: the requested streams each backbone has."""
        return [(b, s) for b in self.backbones for s in self.streams if s in BACKBONES.get(b).streams]

    @property
    def needs_flow(self) -> bool:
        return self.flow != "none"

    def left_out(self) -> list[str]:
        """The families this config cannot extract for want of flow (``flow="none"``): the
        weight-free ``hof_flow`` and ``motion/camera``, which read flow; ``kin_pose`` does not."""
        return ["hof_flow", "motion/camera"] if self.weightfree and not self.needs_flow else []

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["backbones"], d["streams"] = list(self.backbones), list(self.streams)
        return d


#: TV-L1 on the CPU of a 2-core machine (AMD EPYC): tvl1-torch's speed over OpenCV's, what ``--flow
#: auto`` decides by on the CPU. Compiled, per pair once compiled, ``benchmarks/tvl1.py --sizes
#: 340x256`` gives x1.96 (3.92 vs 2.00 pairs/s, EPE to OpenCV median 0.006 px); but the compile is
#: paid again by every process, and on one video its C++ build cost more than it saved:
#: ``benchmarks/extract_throughput.py`` on vtest.avi cut to 300 frames (160 pairs), flow stage
#: 2275 s compiled (compile included) vs 2139 s OpenCV, x0.94 (machine loaded, load ~15-20), which
#: is the figure used. Eager (``--no-cpu-compile``): x0.03, measured under the same load.
CPU_FLOW_VS_OPENCV = {"tvl1-torch compiled": 0.94, "tvl1-torch eager": 0.03}


def can_compile_on_cpu() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here: TorchDynamo supports this Python and
    a C++ compiler (``$CXX``, g++, c++ or clang++) is installed (inductor compiles C++)."""
    import shutil

    try:
        from torch._dynamo import is_dynamo_supported
    except ImportError:  # pragma: no cover - a torch without dynamo
        return False
    compilers = (os.environ.get("CXX"), "g++", "c++", "clang++")
    return bool(is_dynamo_supported()) and any(shutil.which(c) for c in compilers if c)


def resolve_flow(name: str, device: str) -> tuple[str, dict]:
    """(backend, options) that flow ``name`` stands for on ``device``. ``auto`` picks the backend
    measured faster there: tvl1-torch on CUDA; on the CPU, the fastest of tvl1-torch compiled (where
    compiling is possible, its compile counted), tvl1-torch eager and OpenCV
    (:data:`CPU_FLOW_VS_OPENCV`: OpenCV on a 2-core CPU today). The
    options hold the CPU choice's ``compile``, recorded as the config's ``flow_compile``."""
    if name != "auto":
        return name, {}
    device = str(device)
    if device.startswith("cuda"):
        return "tvl1-torch", {}
    if device != "cpu":  # mps: tvl1-torch has not been measured there
        return "tvl1-cpu", {}
    speed = {("tvl1-cpu", None): 1.0, ("tvl1-torch", False): CPU_FLOW_VS_OPENCV["tvl1-torch eager"]}
    if can_compile_on_cpu():
        speed["tvl1-torch", True] = CPU_FLOW_VS_OPENCV["tvl1-torch compiled"]
    backend, compile_ = max(speed, key=speed.get)
    return backend, {} if compile_ is None else {"compile": compile_}


class OptionError(ValueError):
    """A bad value of the command-line option ``option`` (e.g. ``--sampling-opt``)."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def option_error(option: str, message: str, error: TypeError) -> Exception:
    """An unknown keyword is a bad ``option`` value; any other TypeError is a bug: kept."""
    bad = any(t in str(error) for t in ("keyword argument", "unknown option"))
    return OptionError(option, message) if bad else error


def count_option(key: str, value):
    """A :data:`COUNT_BACKBONE_OPTIONS` value: a positive integer (``resize``: or a [height, width]
    pair, returned as a tuple), else :class:`OptionError`."""
    def positive_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if positive_int(value):
        return value
    if key == "resize" and isinstance(value, list) and len(value) == 2 and all(map(positive_int, value)):
        return tuple(value)
    allowed = "a positive integer" + (" or [height, width]" if key == "resize" else "")
    raise OptionError("--backbone-opt", f"{key}={value!r}: expected {allowed}")


def resolve_device(device: str) -> str:
    """``auto``: cuda when available, else cpu. ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are
    checked against this machine: anything else, or a device it lacks, is an :class:`OptionError`."""
    device = str(device)
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise OptionError("--device", f"{device!r}: expected cpu, cuda, cuda:N, mps or auto")
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    n_cuda = torch.cuda.device_count() if torch is not None else 0
    if device == "auto":
        return "cuda" if n_cuda else "cpu"
    if device == "mps":
        if torch is None or not torch.backends.mps.is_available():
            raise OptionError("--device", "mps: PyTorch's MPS backend is not available on this "
                                          "machine; use --device cpu or auto")
        return device
    k = int(device.partition(":")[2] or 0)
    if k >= n_cuda:
        have = (f"this machine has {n_cuda} CUDA device(s), cuda:0..cuda:{n_cuda - 1}" if n_cuda
                else "CUDA is not available on this machine")
        raise OptionError("--device", f"{device}: {have}; use --device cpu or auto")
    return device

"""aqa.extract: stage 1, video -> pose, optical flow, backbone features -> HDF5 cache.

:func:`extract` runs it from Python in one call (the same run as ``aqa-extract``). Heavy
libraries (torch, cv2, av) are imported inside the modules that need them.
"""
from .api import extract

__all__ = ["extract"]

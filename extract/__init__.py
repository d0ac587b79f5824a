"""aqa.extract: stage 1, video -> pose, optical flow, backbone features -> HDF5 cache.

Heavy libraries (torch, cv2, av) are imported inside the modules that need them.
"""

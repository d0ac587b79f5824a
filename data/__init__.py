"""aqa.data: the HDF5 feature cache, dataset readers and splits, labels tables, synthetic demo videos.

Imports nothing heavy (no torch, no cv2) so that `import aqa.data` stays fast.
"""

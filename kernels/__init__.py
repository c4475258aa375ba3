"""Hand-written CUDA kernels of minidl, installed as the package ``minidl.kernels``.

The .cu files beside this module are read with importlib.resources and compiled once
per (file, device) with cupy.RawModule; see loader.py.
"""

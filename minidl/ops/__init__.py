"""Differentiable ops, one family per file.

Primitive tensor math (elementwise, reduce, shape, linalg) writes its backward with
Tensor ops so it can be differentiated twice; the layer ops (conv, pool, norm, dropout,
activation, loss, resize) write theirs on raw arrays, side by side with the forward.
"""

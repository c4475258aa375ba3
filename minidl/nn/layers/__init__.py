"""The layers of minidl.nn, one file per family (linear, conv, pooling, normalization,
dropout, activation, loss, resize, misc)."""

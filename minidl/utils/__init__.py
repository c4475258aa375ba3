"""Utilities around the engine: checkpoints, the training loop, model summaries, PyTorch
weight import and plotting."""
from . import checkpoint, train
from .checkpoint import load, save
from .train import EarlyStopping, History, evaluate, fit, predict, tta_views

__all__ = ["save", "load", "fit", "evaluate", "predict", "History", "EarlyStopping",
           "tta_views", "checkpoint", "train"]

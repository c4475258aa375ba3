"""Utilities around the engine: checkpoints, the training loop, model summaries, PyTorch
weight import and plotting."""
from . import checkpoint, train
from .checkpoint import load, save
from .summary import ModelSummary, model_table, summary
from .torch_import import load_torch_state_dict, torch_state_dict_to_numpy
from .train import EarlyStopping, History, evaluate, fit, predict, tta_views

__all__ = ["save", "load", "summary", "ModelSummary", "model_table", "load_torch_state_dict",
           "torch_state_dict_to_numpy", "fit", "evaluate", "predict", "History", "EarlyStopping",
           "tta_views", "checkpoint", "train"]

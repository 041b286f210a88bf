"""Gradient rollback for knowledge-graph embeddings: train, record, explain."""

from gr_core.config import PRESETS, TrainConfig
from gr_core.data import BUILTIN_DATASETS, Dataset, load_dataset
from gr_core.explain import Explainer, Prediction
from gr_core.explanation import Explanation, ExplanationRow
from gr_core.ledger import Ledger
from gr_core.models import ComplEx, DistMult
from gr_core.runs import Run, load_run, load_run_with_dataset, save_run
from gr_core.training import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_DATASETS",
    "PRESETS",
    "ComplEx",
    "Dataset",
    "DistMult",
    "Explainer",
    "Explanation",
    "ExplanationRow",
    "Ledger",
    "Prediction",
    "Run",
    "TrainConfig",
    "TrainResult",
    "load_dataset",
    "load_run",
    "load_run_with_dataset",
    "save_run",
    "train",
]

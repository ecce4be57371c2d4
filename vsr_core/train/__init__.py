"""Training: degradations, on-the-fly clip datasets, losses and the shared trainer."""
from .degradations import (DEGRADATIONS, RealBasicVSRDegradation, bd_downsample, bi_downsample, degrade,
                           matlab_imresize, quantize)
from .losses import charbonnier, temporal_difference, warping_consistency
from .trainer import TASKS, TrainConfig, export_model, freeze_except, register_task, train
from .tasks import TASK_TABLE, task_config  # every task in TASKS, whatever was imported before

__all__ = ["DEGRADATIONS", "RealBasicVSRDegradation", "bd_downsample", "bi_downsample", "degrade",
           "matlab_imresize", "quantize", "charbonnier", "temporal_difference", "warping_consistency",
           "TASKS", "TASK_TABLE", "task_config", "TrainConfig", "export_model", "freeze_except", "register_task", "train"]

"""Factories that recipes in the tests name as ``tests.factories:<fn>``."""


def tiny_cnn(num_classes: int = 10):
    """An untrained two-layer CNN for 1x32x32 inputs (seeded, so its outputs are reproducible)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    )


def broken():
    raise RuntimeError("weights file missing")


def small_digits():
    """The digits splits with a smaller evaluation split."""
    from optimizer.config import DataConfig
    from optimizer.sources.data import Splits, digits

    s = digits(DataConfig(evaluation_fraction=0.1, calibration_size=64))
    return Splits(s.train, s.train_labels, s.calibration, s.evaluation, s.evaluation_labels)

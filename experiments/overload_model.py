"""A heavier image model for the overload benchmark, as a user's factories (``model.source`` / ``data.source``).

The built-in digits model serves about 4,000 one-sample requests/s on 2 cores, so 1.5x its capacity asks a
Python load generator on the same cores for 6,000 requests/s, and the generator's own delay then dominates
the latencies it reports. This CNN costs about ten times more per sample, so the same overload needs a
tenth of the requests and the generator stays off the critical path.

Weights are random (seeded); the batch norms are fitted to the images' statistics, so the outputs differ
from image to image (a random network with global pooling otherwise answers every image alike, and the
nearest-neighbour check has nothing to compare). The images are smooth random patterns without labels:
serving behaviour does not depend on what the model has learnt.

    python -m optimizer recipe=int8 model.source=experiments.overload_model:cnn \\
        data.source=experiments.overload_model:images
"""

import numpy as np
import torch
from torch import nn

from optimizer.sources.data import Splits


def _smooth(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Random 4 x 4 patterns upsampled to size x size, plus noise: 3 channels, float32."""
    low = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
    x = np.kron(low, np.ones((1, 1, size // 4, size // 4), np.float32))
    return x + 0.3 * rng.standard_normal(x.shape).astype(np.float32)


def _block(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def cnn(width: int = 64, classes: int = 10, size: int = 64, seed: int = 0) -> nn.Module:
    """Stem + three conv blocks (width, 2x, 4x channels; strides 1, 2, 2), global pooling, a linear head and a
    batch norm on the outputs; batch-norm statistics from 128 images like ``images``' (another seed)."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.ReLU(), _block(width, width, 1),
                      _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes), nn.BatchNorm1d(classes))
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.momentum = None  # a plain average over the fitting batch
            mod.reset_running_stats()
    m.train()
    with torch.no_grad():
        m(torch.from_numpy(_smooth(np.random.default_rng(seed + 12345), 128, size)))
    return m.eval()


def images(size: int = 64, train: int = 64, calibration: int = 256, evaluation: int = 128, seed: int = 0) -> Splits:
    """Smooth random 3 x size x size images (one float32 input ``input``), no labels."""
    rng = np.random.default_rng(seed)
    return Splits(_smooth(rng, train, size), None, _smooth(rng, calibration, size),
                  _smooth(rng, evaluation, size), None)

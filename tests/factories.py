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


def token_splits(n: int = 24, length: int = 16, drop: str = "", dtype: str = "int64", labels: str = "both",
                 empty: str = ""):
    """Three named int64 inputs (input_ids, attention_mask, token_type_ids) of ``n`` samples per split;
    ``drop`` leaves an input out, ``dtype`` changes input_ids' type, ``labels`` is both / train / none /
    short (fewer labels than samples), ``empty`` names a split left empty."""
    import numpy as np

    from optimizer.sources.data import Splits

    rng = np.random.default_rng(0)

    def feeds(m):
        ids = rng.integers(5, 60, (m, length)).astype(dtype)
        out = {"input_ids": ids, "attention_mask": np.ones((m, length), np.int64),
               "token_type_ids": np.zeros((m, length), np.int64)}
        return {k: v for k, v in out.items() if k != drop}

    y = rng.integers(0, 2, n).astype(np.int64)
    sizes = {s: 0 if s == empty else n for s in ("train", "calibration", "evaluation")}
    train_y = y[: sizes["train"]] if labels in ("both", "train", "short") else None
    eval_y = {"both": y[: sizes["evaluation"]], "short": y[:3]}.get(labels)
    return Splits(feeds(sizes["train"]), train_y, feeds(sizes["calibration"]), feeds(sizes["evaluation"]), eval_y)


def conv_features():
    """An untrained convolution whose output is 4-D (not an embedding)."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 4, 3, padding=1)


def two_inputs():
    """A model whose forward takes ``input_ids`` and ``attention_mask`` (the data must give both)."""
    import torch

    class Pool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = torch.nn.Embedding(64, 8)

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.unsqueeze(-1).float()
            return (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)

    return Pool()


def digits_like(train_size: int = 16, evaluation_size: int = 16, calibration_size: int = 16, side: int = 32,
                train_side: int = 0):
    """Random 1 x side x side float inputs with labels 0-9; ``train_side`` gives the train split another size."""
    import numpy as np

    from optimizer.sources.data import Splits

    rng = np.random.default_rng(0)

    def x(n, s=side):
        return rng.random((n, 1, s, s), dtype=np.float32)

    y = lambda n: rng.integers(0, 10, n).astype(np.int64)  # noqa: E731
    return Splits(x(train_size, train_side or side), y(train_size), x(calibration_size), x(evaluation_size),
                  y(evaluation_size))


def audio_frames(n: int = 96):
    """Frames of a waveform: input ``x`` [n, 64] float32, no labels (a voice-activity model's data)."""
    import numpy as np

    from optimizer.sources.data import Splits

    rng = np.random.default_rng(0)

    def frames(m):
        return {"x": rng.normal(size=(m, 64)).astype(np.float32)}

    return Splits(frames(n), None, frames(n // 2), frames(n), None)


def mel_features(n: int = 48, bins: int = 8, frames: int = 32):
    """Log-mel-like ``input_features`` [n, bins, frames] float32, no labels (a tiny Whisper's data)."""
    import numpy as np

    from optimizer.sources.data import Splits

    rng = np.random.default_rng(0)

    def features(m):
        return {"input_features": rng.normal(size=(m, bins, frames)).astype(np.float32)}

    return Splits(features(n), None, features(n // 2), features(n // 2), None)

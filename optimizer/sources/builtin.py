"""Built-in models, trained once on the bundled digits data and cached: a small ResNet (``builtin``,
the default) and a small Vision Transformer (``builtin:vit_digits``): the ``builtin`` row of the SOURCES table."""

from pathlib import Path

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.files import content_key
from optimizer.formats import versions
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError
from optimizer.sources.data import Splits

BUILTIN_FACTORY = "optimizer.sources.builtin:digits_resnet"
FORMAT = "torch"
BUILTINS = {"": BUILTIN_FACTORY, "digits_resnet": BUILTIN_FACTORY, "vit_digits": "optimizer.sources.vit:vit_digits"}


def image_inputs(splits: Splits, what: str):
    """The train split's one float image input [N, C, H, W] and its labels, as tensors."""
    import numpy as np
    import torch

    if splits.train_labels is None:
        raise RecipeError(f"{what} needs labels in the train split; the data has none")
    (name, x), = splits.train.items() if len(splits.train) == 1 else ((None, None),)
    if x is None or x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise RecipeError(f"{what} trains on one float image input [N, C, H, W]; the data has "
                          f"{ {k: f'{v.dtype.name} {list(v.shape)}' for k, v in splits.train.items()} }")
    return torch.from_numpy(x), torch.from_numpy(splits.train_labels.astype(np.int64))


def digits_resnet(width: int = 32, num_classes: int = 10, in_channels: int = 1):
    """A small ResNet for 1x32x32 inputs: stem + three basic blocks (width, 2w, 4w) + linear."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.short = nn.Identity()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + self.short(x))

    w = width
    model = nn.Sequential(
        nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        Block(w, w, 1), Block(w, 2 * w, 2), Block(2 * w, 4 * w, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
    )
    model.output_names = ["logits"]
    return model


def train(module, splits: Splits, epochs: int, seed: int, lr: float = 3e-3, label: str = "training", loss=None):
    """Train ``module`` in place on the train split (Adam, cosine schedule, ±2 px shifts).

    ``loss(logits, inputs, labels)`` replaces the cross-entropy (distillation adds a teacher term)."""
    import torch

    from optimizer.console import progress

    x, y = image_inputs(splits, label)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    module.train()
    with progress(label, steps) as advance:
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(64):
                dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
                xb = torch.roll(x[idx], shifts=(dx, dy), dims=(2, 3))
                out = module(xb)
                err = loss(out, xb, y[idx]) if loss else torch.nn.functional.cross_entropy(out, y[idx])
                opt.zero_grad()
                err.backward()
                opt.step()
                sched.step()
                advance()
    return module.eval()


def defaults(fn) -> dict:
    """A factory's keyword defaults: they go into the cache key and the artifact, so a model built before a
    default changed is never taken for one built after."""
    import inspect

    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def matches(source: str) -> bool:
    return source == "builtin" or source.startswith("builtin:")


def default_name(source: str) -> str:
    return source.partition(":")[2] if ":" in source else "digits_resnet"


def directory(source: str) -> Path:
    """The package's own directory (its git revision is the model's)."""
    return Path(__file__).resolve().parent.parent


def factories(source: str) -> frozenset:
    return frozenset(BUILTINS.values())


def check(cfg: ModelConfig) -> None:
    """Nothing to check before loading: the name is checked when the model is built."""


def load(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """``builtin`` or ``builtin:<name>``: the named built-in model, trained on the splits once, then cached."""
    from optimizer.factory import resolve
    from optimizer.formats.torch import load_module, torch_artifact
    from optimizer.sources.probe import probe_meta

    name = cfg.source.partition(":")[2]
    if name not in BUILTINS:
        raise RecipeError(f"model.source {cfg.source!r}: unknown built-in model; known: "
                          f"{', '.join('builtin:' + k for k in BUILTINS if k)}")
    factory = BUILTINS[name]
    if splits.num_classes is None:
        raise RecipeError(f"model.source {cfg.source!r} is trained on class labels; the data has none")
    image = next(iter(splits.evaluation.values()))
    build = resolve(factory, "model.source")
    kwargs = {**defaults(build), "num_classes": splits.num_classes, "in_channels": image.shape[1], **cfg.kwargs}
    key = content_key("builtin", factory, kwargs, cfg.train_epochs, seed, splits.fingerprint, versions())

    def produce(directory: Path) -> Artifact:
        import torch

        torch.manual_seed(seed)
        module = build(**kwargs)
        lr = getattr(module, "learning_rate", 3e-3)
        train(module, splits, cfg.train_epochs, seed, lr=lr, label=f"training built-in model {name or 'digits_resnet'}")
        art = torch_artifact(module, directory, factory, kwargs, {"precision": "fp32"})
        return art.evolve(meta=probe_meta(load_module(art), splits))

    return cache.get(key, "source") or cache.put(key, produce)

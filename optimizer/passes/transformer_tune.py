"""What pruning and distillation share on Hugging Face transformers (``hf:`` sources): finding the encoder
layers, the train split as token tensors, and training a model to reproduce its teacher's outputs.

The teacher is the incoming model. Its outputs on the train split are computed once; the student is then
trained label-free to reproduce them (pooled embeddings: ``1 - cosine`` plus MSE scaled by the teacher's
mean square; logits: KL at a temperature, times T²), plus cross-entropy on labels when the data has them
(weight ``1 - alpha``). Token inputs get no augmentation (a pixel roll means nothing for token ids), and
dropout is off while training: the student copies a fixed function of its teacher."""

from typing import Dict, List, Optional

from optimizer.errors import RecipeError
from optimizer.factory import HF_FACTORY

# Where the parts of one encoder layer live, relative to the layer: (self-attention with query/key/value,
# attention output projection, MLP up projection, MLP down projection). BERT, RoBERTa, XLM-R, ELECTRA,
# CamemBERT, ERNIE, Data2Vec-text share the first; ViT and DeiT the second.
LAYOUTS = (
    ("attention.self", "attention.output.dense", "intermediate.dense", "output.dense"),
    ("attention.attention", "attention.output.dense", "intermediate.dense", "output.dense"),
)


def is_transformer(art) -> bool:
    """An artifact built from an ``hf:`` source (its factory rebuilds the Hugging Face model)."""
    return art.meta.get("factory") == HF_FACTORY


def part(layer, path: str):
    for name in path.split("."):
        layer = getattr(layer, name, None)
        if layer is None:
            return None
    return layer


def _fits(layer, layout) -> bool:
    import torch

    attention, *linears = [part(layer, p) for p in layout]
    return (attention is not None and all(isinstance(getattr(attention, n, None), torch.nn.Linear)
                                          for n in ("query", "key", "value"))
            and isinstance(getattr(attention, "attention_head_size", None), int)
            and all(isinstance(m, torch.nn.Linear) for m in linears))


def encoder_layers(module):
    """(name of the ModuleList of encoder layers, that list, its layout), or None when no list of layers
    has a known layout."""
    import torch

    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.ModuleList) and len(sub):
            for layout in LAYOUTS:
                if all(_fits(layer, layout) for layer in sub):
                    return name, sub, layout
    return None


def layers_or_error(module, what: str):
    """``encoder_layers`` or a PassError-ready message naming what is supported."""
    found = encoder_layers(module)
    if found is None:
        kind = type(getattr(module, "model", module)).__name__
        raise RecipeError(f"{what}: {kind} has no encoder layers of a known layout (BERT-family encoders such as "
                          f"BERT, RoBERTa, ELECTRA, XLM-R, or ViT/DeiT); load it through a factory "
                          f"(model.source=pkg.module:function) and name a student factory for distill")
    return found


def check_source(recipe, where: str) -> None:
    """Plan time, before anything is loaded or timed: a ``.pt2`` program cannot be cut or shortened, and an
    ``hf:`` model must have encoder layers of a known layout (checked on an empty meta-device copy); ``where``
    is ``passes.<label>``."""
    space = getattr(getattr(recipe, "search", None), "space", None) or {}
    if None in list(space.get(where.partition(".")[2]) or []):
        return  # a search may leave the step out: where it cannot run, that is one failed trial, not a bad recipe
    source = str(recipe.model.source)
    if source.endswith(".pt2"):
        raise RecipeError(f"{where}: model.source {source!r} is a fixed program without its factory; prune and "
                          f"distill retrain the model: give its factory (pkg.module:function) or an hf:<dir>")
    if not source.startswith("hf:"):
        return
    import torch

    from optimizer.sources import hf

    from transformers import AutoModel

    config = hf.read_config(source[3:])
    hf.resolve_task(config, str(getattr(recipe.model, "task", "auto")), f"model.source {source!r}")
    with torch.device("meta"):  # the base model has the same encoder layers as every head
        model = AutoModel.from_config(config, attn_implementation="eager")
    layers_or_error(model, where)


def tensors(split, order: List[str], what: str, name: str = "train") -> Dict:
    """A split's inputs in ``order`` as tensors; RecipeError when the data lacks one or the split is empty."""
    import numpy as np
    import torch

    missing = [n for n in order if n not in split]
    if missing:
        raise RecipeError(f"{what}: the model takes {order}; the {name} split lacks {missing}")
    feeds = {n: torch.from_numpy(np.ascontiguousarray(split[n])) for n in order}
    if not len(feeds[order[0]]):
        raise RecipeError(f"{what}: the {name} split is empty; the model needs samples to learn from")
    return feeds


def outputs(module, feeds: Dict, order: List[str], batch: int = 64):
    """``module``'s first output over ``feeds``, ``batch`` samples at a time, without gradients."""
    import torch

    n = len(feeds[order[0]])
    with torch.no_grad():
        return torch.cat([_first(module(*[feeds[k][i:i + batch] for k in order])) for i in range(0, n, batch)])


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def cosine(a, b) -> float:
    """Mean cosine of ``a`` and ``b`` per sample (each sample flattened)."""
    import torch

    return float(torch.nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1).mean())


def centered_cosine(a, b) -> float:
    """``cosine`` after taking the teacher's (``b``'s) mean sample from both: untrained encoders give every
    input nearly the same pooled embedding, so the plain cosine says little until that common part is gone."""
    mean = b.flatten(1).double().mean(0, keepdim=True)
    return cosine(a.flatten(1).double() - mean, b.flatten(1).double() - mean)


def match_loss(embedding: bool, temperature: float, alpha: float):
    """``loss(student_out, teacher_out, labels or None)``: the teacher term, plus cross-entropy on labels."""
    import torch.nn.functional as F

    def loss(s, t, y):
        if embedding:
            soft = (1 - F.cosine_similarity(s, t, dim=-1)).mean() + F.mse_loss(s, t) / t.pow(2).mean().clamp_min(1e-8)
        else:
            T = temperature
            s2, t2 = s.flatten(0, -2), t.flatten(0, -2)
            soft = F.kl_div(F.log_softmax(s2 / T, -1), F.softmax(t2 / T, -1), reduction="batchmean") * T * T
        if y is None or embedding:
            return soft
        return alpha * soft + (1 - alpha) * F.cross_entropy(s.flatten(0, -2), y.flatten())

    return loss


def fit(module, feeds: Dict, order: List[str], target, labels: Optional[object], loss, *, epochs: int, lr: float,
        batch: int, seed: int, label: str) -> float:
    """Train ``module`` in place to ``loss(module(batch), target[batch], labels[batch])`` (AdamW, one-cycle
    schedule, dropout off); returns the last epoch's mean loss."""
    import torch

    from optimizer.console import progress

    n = len(target)
    torch.manual_seed(seed)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    module.eval()  # no dropout: the teacher's outputs are a fixed target
    last = 0.0
    with progress(label, steps) as advance:
        for _ in range(epochs):
            total = 0.0
            for idx in torch.randperm(n, generator=gen).split(batch):
                y = None if labels is None else labels[idx]
                err = loss(_first(module(*[feeds[k][idx] for k in order])), target[idx], y)
                opt.zero_grad()
                err.backward()
                opt.step()
                sched.step()
                total += float(err.detach()) * len(idx)
                advance()
            last = total / n
    return last


def labels_of(splits):
    """The train labels as an int64 tensor, or None when the data has none (or they are not class ids)."""
    import numpy as np
    import torch

    y = splits.train_labels
    if y is None or not np.issubdtype(np.asarray(y).dtype, np.integer):
        return None
    return torch.from_numpy(np.asarray(y).astype(np.int64))


def params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


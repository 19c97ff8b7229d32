"""Resource limits checked before any pass runs: a batch size whose inputs and activations would not fit in
memory is refused (RecipeError naming the key and the size it needs) instead of failing in an allocation."""

from typing import Dict, Tuple

from optimizer.errors import RecipeError
from optimizer.io import count

LIVE_ACTIVATIONS = 2  # tensors the size of the largest layer output alive at once (its input and its output)


def per_sample_bytes(source, splits) -> Tuple[int, int]:
    """(input bytes, activation bytes) of one evaluation sample. Activations are measured on a torch source
    (the largest output of any layer, times ``LIVE_ACTIVATIONS``); other formats count their outputs only."""
    from optimizer.io import take

    one = take(splits.evaluation, slice(0, 1))
    inputs = sum(int(a.nbytes) for a in one.values())
    if source.format != "torch":
        return inputs, inputs  # no layer-level view of a file: assume outputs as large as the inputs
    try:
        return inputs, LIVE_ACTIVATIONS * _largest_layer_output(source, one)
    except Exception:  # noqa: BLE001 - an estimate only: a module hooks cannot see is judged by its inputs
        return inputs, inputs


def _largest_layer_output(source, feeds) -> int:
    import torch

    from optimizer.formats.torch import forward, load_module

    module = load_module(source)
    largest = [0]

    def hook(_module, _inputs, output):
        tensors = output if isinstance(output, (tuple, list)) else [output]
        size = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
        largest[0] = max(largest[0], size)

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        forward(module, feeds)
    finally:
        for h in handles:
            h.remove()
    return largest[0]


def batch_sizes(cfg, splits) -> Dict[str, int]:
    """The largest batch each setting makes a worker hold at once."""
    sizes = {"benchmark.batch_sizes": max(int(b) for b in cfg.benchmark.batch_sizes),
             "evaluation.batch_size": min(int(cfg.evaluation.batch_size), count(splits.evaluation))}
    if cfg.triton.emit:
        sizes["serving.max_batch_cap"] = int(cfg.serving.max_batch_cap)
    return sizes


def check_memory(cfg, source, splits, available_mb: float = 0.0) -> None:
    """RecipeError when a batch would not fit ``benchmark.memory_budget_mb`` (0: 80 % of MemAvailable)."""
    from optimizer.host import mem_available_mb

    budget = cfg.benchmark.memory_budget_mb or 0.8 * (available_mb or mem_available_mb())
    sizes = batch_sizes(cfg, splits)
    key, batch = max(sizes.items(), key=lambda kv: kv[1])
    inputs, activations = per_sample_bytes(source, splits)
    need = batch * (inputs + activations) / 2**20
    if need > budget:
        raise RecipeError(f"{key}: a batch of {batch} needs about {_size(need)} for its inputs and activations "
                          f"({_size((inputs + activations) / 2**20)} per sample) but {_size(budget)} is available "
                          f"(benchmark.memory_budget_mb); use a smaller batch size")


def _size(mb: float) -> str:
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.1f} MiB" if mb >= 1 else f"{mb * 1024:.0f} KiB"

"""Small helpers over ONNX graphs shared by passes and the emitter."""

from collections import Counter
from pathlib import Path
from typing import Dict

from optimizer.errors import RecipeError


def check_onnx(path: Path, what: str) -> None:
    """Raise RecipeError naming ``what`` when ``path`` is not a loadable, valid ONNX model."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError(f"{what} is not a valid ONNX model: {first[:200]}") from e


def op_counts(path: Path) -> Dict[str, int]:
    """Node count per op type of the main graph, sorted by op name."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))

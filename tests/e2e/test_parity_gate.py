"""The parity gate over a whole run of the pipeline: a variant that runs but answers wrongly is never chosen."""

import numpy as np

from tests.helpers import FAST


def test_parity_gate_rejects_a_broken_variant(builtin, cache_dir, tmp_path):
    """A pass that corrupts the weights makes a variant that keeps running but answers wrongly: it is never chosen."""
    from dataclasses import dataclass

    from optimizer.pipeline import run
    from optimizer.recipe.compose import compose
    from optimizer.registry import register

    @dataclass(frozen=True)
    class NoiseConfig:
        scale: float = 1.0  # standard deviation of the noise added to every weight

    @register("add_noise", NoiseConfig, takes="onnx", makes="onnx")
    def add_noise(art, cfg, ctx):
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(art.path))
        rng = np.random.default_rng(0)
        for init in model.graph.initializer:
            w = numpy_helper.to_array(init)
            if w.dtype == np.float32 and w.size > 16:
                init.CopyFrom(numpy_helper.from_array(w + rng.normal(0, cfg.scale, w.shape).astype(np.float32),
                                                      init.name))
        onnx.save(model, str(ctx.out_dir / "model.onnx"))
        return art.evolve(path=ctx.out_dir / "model.onnx")

    cfg = compose("baseline", ["+passes.broken.type=add_noise", "constraints.max_accuracy_drop=null", *FAST])
    summary = run(cfg, tmp_path, "baseline").to_dict()
    broken = next(v for v in summary["variants"] if v["name"] == "broken")
    assert broken["status"] == "ok" and broken["evaluation"]["mean_cosine"] < 0.9
    cosine, relative = broken["violations"]
    assert cosine.startswith("mean cosine to the reference ") and "< 0.99 (short by " in cosine
    assert relative.startswith("relative error of output 'logits' to the reference ") and "> 0.2" in relative
    assert summary["chosen"] == "export" and summary["gate_failures"]["broken"] == [cosine, relative]

"""``python -m optimizer list`` / ``explain``: what the tool offers and what a recipe would run, nothing run."""

from optimizer.recipe.discover import field_comments, list_text, options
from optimizer.passes.quantize import QuantizeConfig


def test_options_carry_defaults_choices_and_source_comments():
    rows = {r["name"]: r for r in options(QuantizeConfig)}
    assert rows["calibration_samples"]["default"] == "256"
    assert rows["calibration_samples"]["comment"] == "samples drawn from data.calibration (static)"
    assert rows["mode"]["comment"].startswith("[static|dynamic|fp16] ")
    assert set(field_comments(QuantizeConfig)) == {r for r in rows}  # every field has its comment


def test_list_names_recipes_passes_and_hardware():
    text = list_text()
    assert "  int8: export -> fuse -> static INT8" in text
    assert "      chain: export (onnx_export) -> fuse (fuse) -> quantize (quantize)" in text
    assert "      chain: prune (prune) -> export (onnx_export)" in text  # prune_sweep inherits its chain
    for p in ("distill", "fuse", "onnx_export", "prune", "quantize"):
        assert f"\n  {p}  (" in text
    assert "      per_channel         = True   # one scale per output channel of each weight" in text
    assert "  aws_c7i_large: aws-c7i.large, cpu, 2 cores, $0.08925/h (AWS EC2 on-demand pricing" in text
    assert "  local_cpu: local-cpu, cpu, 2 cores, no price" in text

"""``python -m optimizer list`` / ``explain``: what the tool offers and what a recipe would run, nothing run."""

import subprocess
import sys

from optimizer.recipe.discover import field_comments, list_text, options
from optimizer.passes.quantize import QuantizeConfig
from tests.helpers import ROOT


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "optimizer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


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


def test_list_section_and_explain_through_the_cli():
    proc = _cli("list", "hardware")
    assert proc.returncode == 0 and proc.stdout.startswith("Hardware") and "Recipes" not in proc.stdout
    proc = _cli("explain", "recipe=int8", "passes.quantize.per_channel=false")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "  3. quantize: quantize (onnx -> onnx)" in out
    assert "per_channel         = False   (default True)" in out
    assert "\ngates:\n  baseline" in out and "nothing was run" in out


def test_explain_rejects_bad_input_with_exit_2():
    proc = _cli("explain", "recipe=nope")
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown recipe 'nope'; available: baseline")
    proc = _cli("explain", "recipe=int8", "passes.quantize.mode=int4")
    assert proc.returncode == 2 and "passes.quantize.mode: Invalid value 'int4'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _cli("list", "bogus").returncode == 2


def test_help_points_at_list_and_explain():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "python -m optimizer list" in proc.stdout and "python -m optimizer explain recipe=int8" in proc.stdout


def test_list_and_explain_see_the_users_own_recipes(tmp_path):
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "mine.yaml").write_text(
        "# @package _global_\ndescription: my export only\npasses:\n  export: {type: onnx_export, opset: 17}\n")
    listed = _cli("list", "recipes", "--config-dir", str(tmp_path))
    assert listed.returncode == 0 and "  mine: my export only\n      chain: export (onnx_export)" in listed.stdout
    assert "  int8: " in listed.stdout  # the built-in recipes are still there
    explained = _cli("explain", f"--config-dir={tmp_path}", "recipe=mine")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith("recipe mine: my export only") and "1. export: onnx_export" in explained.stdout
    assert any(ln.split()[:3] == ["opset", "=", "17"] for ln in explained.stdout.splitlines())
    without = _cli("explain", "recipe=mine")
    assert without.returncode == 2 and "unknown recipe 'mine'" in without.stderr
    gone = _cli("list", "-cd", str(tmp_path / "nowhere"))
    assert gone.returncode == 2 and gone.stderr.strip() == f"error: --config-dir {tmp_path / 'nowhere'} is not a directory"

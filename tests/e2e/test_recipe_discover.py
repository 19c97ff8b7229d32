"""``python -m optimizer list`` / ``explain`` through the command line: sections, bad input with exit 2, the help
text, the user's own recipes."""

import subprocess
import sys

from tests.helpers import ROOT


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "optimizer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


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
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown recipe 'nope'; available: auto, baseline")
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

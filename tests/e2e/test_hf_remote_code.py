"""On the command line, a model directory that names code of its own is refused in one line, exit 2, before
any prompt: nothing of the directory's code runs, even with a terminal that would answer 'y'."""

import json

from tests.helpers import FAST, run_cli


def test_remote_code_is_refused_before_any_prompt(cache_dir, tmp_path):
    marker = tmp_path / "ran"
    d = tmp_path / "evil"
    d.mkdir()
    (d / "configuration_evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    (d / "config.json").write_text(json.dumps({"auto_map": {"AutoConfig": "configuration_evil.EvilConfig"},
                                              "architectures": ["BertModel"]}))  # a class transformers knows
    (d / "model.safetensors").write_bytes(b"\0" * 16)
    text = tmp_path / "t.txt"
    text.write_text("a line\nanother line\n")
    code, out, summary = run_cli(["recipe=transformer_int8", f"model.source=hf:{d}", f"data.source=text:{text}",
                                  *FAST], cache_dir, tmp_path / "run")
    assert code == 2, out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert "config.json names code of its own (auto_map: configuration_evil.EvilConfig)" in line
    assert "Traceback" not in out and "[y/N]" not in out and not marker.exists()

"""summary.json's provenance: schema version, git revision of the model source, paths relative to the run dir."""

import subprocess

from optimizer.record.provenance import SCHEMA_VERSION, git_revision, portable
from optimizer.sources.models import source_directory


def test_portable_paths(tmp_path):
    run, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    summary = {"recipe": "int8", "output_dir": run, "cache_dir": cache, "summary_path": f"{run}/summary.json",
               "model_repository": f"{run}/model_repository",
               "triton": {"config": f"{run}/model_repository/m/config.pbtxt", "note": "in /elsewhere"},
               "variants": [{"name": "reference", "path": "/models/user.onnx"},
                            {"name": "export", "path": f"{cache}/abc/model.onnx"}]}
    out = portable(summary)
    assert list(out)[0] == "schema_version" and out["schema_version"] == SCHEMA_VERSION
    assert out["paths"]["run_dir"] == run and out["paths"]["cache_dir"] == cache
    assert out["paths"]["summary"] == f"{run}/summary.json"
    assert out["paths"]["model_repository"] == f"{run}/model_repository"
    assert out["model_repository"] == "model_repository"
    assert out["triton"] == {"config": "model_repository/m/config.pbtxt", "note": "in /elsewhere"}
    assert [v["path"] for v in out["variants"]] == ["/models/user.onnx", "abc/model.onnx"]
    assert "output_dir" not in out and "cache_dir" not in out and "summary_path" not in out
    assert summary["model_repository"] == f"{run}/model_repository"  # the run's own dict is untouched


def test_git_revision_of_a_model_source(tmp_path):
    repo = tmp_path / "project"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "model.onnx").write_bytes(b"onnx")
    git = ["git", "-C", str(repo), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "model"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    rev = git_revision(source_directory(str(repo / "models" / "model.onnx")))
    assert rev == {"commit": head, "dirty": False, "root": str(repo.resolve())}
    (repo / "models" / "model.onnx").write_bytes(b"changed")
    assert git_revision(source_directory(str(repo / "models" / "model.onnx")))["dirty"] is True
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_revision(source_directory(f"hf:{outside}")) is None
    assert source_directory("tests.factories:small") is not None and source_directory("no_such_pkg.mod:fn") is None

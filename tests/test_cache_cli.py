"""``python -m optimizer cache verify|prune`` refuses a cache_dir that names no directory (exit 2)."""

from optimizer.integrity import main


def test_a_file_or_nothing_as_cache_dir(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["verify", f"cache_dir={afile}"]) == 2
    assert capsys.readouterr().err == f"error: cache_dir={afile} is a file, not a cache directory\n"
    assert main(["prune", "cache_dir="]) == 2
    assert capsys.readouterr().err.startswith("error: cache_dir= is empty")
    assert main(["verify", f"cache_dir={tmp_path / 'none'}"]) == 0  # no cache yet: nothing to verify

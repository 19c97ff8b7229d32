"""``serve_check`` refuses bad input in one line with exit 2, before any server starts."""

import pytest

from optimizer.tritonserver.serve_check import main


@pytest.mark.parametrize("args, message", [
    (["--concurrency", "abc"], "argument --concurrency: 'abc' is not a comma-separated list of counts ≥ 1"),
    (["--concurrency", "4,0"], "argument --concurrency: '4,0' is not a comma-separated list of counts ≥ 1"),
    (["--seconds", "nan"], "argument --seconds: 'nan' is not a positive float"),
    (["--requests", "0"], "argument --requests: '0' is not a positive int"),
    (["--sla-ms", "-5"], "argument --sla-ms: '-5' is not a positive float"),
])
def test_bad_options_are_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"error: {message}" + err.split(message, 1)[1]
    assert len(err.strip().splitlines()) == 1


def test_a_config_that_does_not_parse_is_named(tmp_path, capsys, monkeypatch):
    from optimizer.tritonserver import server

    monkeypatch.setattr(server, "find_server", lambda: pytest.fail("no server may be looked for"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text("name: {")
    from optimizer.tritonserver import serve_check

    monkeypatch.setattr(serve_check, "read_sla", lambda *a: pytest.fail("nothing may be read past the config"))
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'm' / 'config.pbtxt'} is not a Triton model config (1:7 : ")

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


@pytest.mark.parametrize("flag", ["--http-port", "--grpc-port"])
@pytest.mark.parametrize("listening", [True, False])
def test_a_port_someone_holds_is_named_at_once(tmp_path, capsys, monkeypatch, flag, listening):
    """A port another process holds (listening, or only bound) is refused in one line, exit 2, before any server is
    looked for: a server there could never come up, and a listener that never answers would stall the wait."""
    import socket

    from optimizer.tritonserver import server

    monkeypatch.setattr(server, "find_server", lambda: pytest.fail("no server may be looked for"))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        if listening:
            held.listen()
        port = held.getsockname()[1]
        assert main([str(tmp_path), flag, str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: port {port} on 127.0.0.1 ({flag}) is already in use; stop what holds it or choose "
                   f"another with {flag} (0 picks a free one)\n")


@pytest.mark.parametrize("args, message", [
    (["--http-port", "70000"], "argument --http-port: '70000' is not a TCP port (0 to 65535; 0 picks a free one)"),
    (["--grpc-port", "-1"], "argument --grpc-port: '-1' is not a TCP port (0 to 65535; 0 picks a free one)"),
    (["--http-port", "8000", "--grpc-port", "8000"], "--http-port and --grpc-port are both 8000; give them "
                                                     "different ports"),
])
def test_bad_ports_are_one_line(tmp_path, capsys, args, message):
    try:
        code = main([str(tmp_path), *args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {message}\n"

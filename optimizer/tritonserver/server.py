"""Find, stage, start and stop a real ``tritonserver`` on 127.0.0.1 (no mocks).

Two kinds of install are used:

- a full Triton install: ``tritonserver`` on ``PATH`` with ``backends/onnxruntime`` beside it; the
  emitted repository is served exactly as written;
- the server bundled in the PyPI wheel ``nvidia-pytriton`` (python backend only), provisioned by
  ``python -m optimizer.tritonserver.provision`` under ``$OPTIMIZER_TRITON_HOME``. The staged copy of the
  repository then swaps ``platform: "onnxruntime_onnx"`` for ``backend: "python"`` and adds a
  ``model.py`` that runs the same ``model.onnx`` with ONNX Runtime; every other field is unchanged."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from optimizer.errors import OptimizerError, RecipeError
from optimizer.tritonserver import provision

RESPONSE_CACHE_BYTES = 256 * 2**20  # the local response cache serve_check gives a server whose models enable one
MODEL_PY = Path(__file__).resolve().parent / "python_model.py"  # model.py of the python-backend swap


class ServerError(OptimizerError):
    """tritonserver did not start, or a model did not become READY; the message quotes its log."""


@dataclass(frozen=True)
class Install:
    binary: Path
    backend_dir: Path
    env: Dict[str, str] = field(default_factory=dict)  # added to the environment of the server
    full: bool = False  # has the onnxruntime backend: serve the repository as written
    description: str = ""



def read_config(path: Path):
    """A model's ``config.pbtxt`` as Triton's ``ModelConfig``; RecipeError naming the file when it does not parse."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    try:
        return text_format.Parse(path.read_text(), mc.ModelConfig())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path} is not a Triton model config ({str(e).splitlines()[0][:200]})") from None

def find_server() -> Install:
    """A full Triton install on PATH, else the provisioned pytriton server; RecipeError when neither."""
    exe = shutil.which("tritonserver")
    if exe:
        binary = Path(exe).resolve()
        backends = Path(os.environ.get("TRITON_BACKEND_DIR", binary.parent.parent / "backends"))
        if (backends / "onnxruntime").is_dir():
            return Install(binary, backends, {}, True, f"tritonserver {binary} with the onnxruntime backend")
    root = provision.home()
    server, venv = provision.server_dir(root), provision.stub_venv(root)
    binary = server / "bin" / "tritonserver"
    if binary.exists() and (server / "backends" / "python" / "triton_python_backend_stub").exists() \
            and (venv / ".complete").exists():
        env = {"LD_LIBRARY_PATH": ":".join(filter(None, [str(root / "pytriton" / "libs"),
                                                          os.environ.get("LD_LIBRARY_PATH")])),
               "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}  # the stub's Python: numpy<2, onnxruntime
        return Install(binary, server / "backends", env, False,
                       f"tritonserver 2.51 from {provision.PYTRITON} (python backend only) under {root}")
    raise RecipeError(f"no Triton server found: put a full install's tritonserver on PATH, or provision one with "
                      f"`python -m optimizer.tritonserver.provision` (needs PyPI; installs under {root})")


def stage(repository: Path, install: Install, into: Path) -> List[str]:
    """Copy ``repository`` to ``into``; for a python-backend-only server swap the platform. Returns notes."""
    from google.protobuf import text_format

    shutil.copytree(repository, into, ignore=shutil.ignore_patterns(".*"))
    notes = []
    for cfg_path in sorted(into.glob("*/config.pbtxt")):
        config = read_config(cfg_path)
        if install.full or config.platform != "onnxruntime_onnx":
            continue
        config.platform, config.backend = "", "python"
        cfg_path.write_text(text_format.MessageToString(config))
        for version in cfg_path.parent.iterdir():
            if version.is_dir() and version.name.isdigit():
                shutil.copyfile(MODEL_PY, version / "model.py")
        notes.append(f"{config.name}: platform onnxruntime_onnx swapped for backend python (model.py runs the same "
                     f"model.onnx with ONNX Runtime); no ONNX Runtime backend in this server")
    return notes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    """Whether something on this machine holds TCP ``port`` on 127.0.0.1 (bound or listening), so a server could
    not listen there. A port left in TIME_WAIT by a closed connection counts as free, as it does for tritonserver."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Server:
    """A running tritonserver in its own process group; ``stop()`` ends the whole group. ``ports`` are its HTTP
    and gRPC ports, 0 for a free one each (metrics are off: no third port)."""

    def __init__(self, repository: Path, install: Install, log_path: Path, extra_args: Sequence[str] = (),
                 ports: Tuple[int, int] = (0, 0)):
        self.http_port, self.grpc_port = (p or free_port() for p in ports)
        self.log_path = log_path
        cmd = [str(install.binary), f"--model-repository={repository}", f"--backend-directory={install.backend_dir}",
               "--http-address=127.0.0.1", f"--http-port={self.http_port}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
               "--allow-metrics=false", "--pinned-memory-pool-byte-size=0", "--disable-auto-complete-config",
               "--exit-timeout-secs=5", "--log-verbose=0",
               f"--backend-config=python,shm-region-prefix-name=opt{uuid.uuid4().hex[:10]}", *extra_args]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **install.env}, start_new_session=True)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, model: str, timeout: float = 60.0) -> float:
        """Seconds until ``model`` is READY; ServerError quoting the log if the server exits or times out. Each
        readiness request gives up after a few seconds: a port taken by a process that accepts and never answers
        costs one of them, after which the server's exit (it could not listen) is seen."""
        import tritonclient.http as http

        t0 = time.perf_counter()
        client = http.InferenceServerClient(self.http_url, connection_timeout=3.0, network_timeout=3.0)
        try:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise ServerError(f"tritonserver exited ({self.proc.returncode}) before {model!r} was READY: "
                                      f"{self.failure()}")
                try:
                    if client.is_model_ready(model):
                        return time.perf_counter() - t0
                except Exception:  # connection refused while the server starts
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        raise ServerError(f"{model!r} not READY after {timeout:.0f} s: {self.failure()}")

    def cpu_seconds(self) -> Optional[float]:
        """CPU time (user + system) used so far by the server and its backend stubs (its process group),
        read from ``/proc``; None where there is no ``/proc``."""
        from optimizer.host import group_cpu_seconds

        return group_cpu_seconds(self.proc.pid)

    def counters(self, model: str) -> Dict[str, float]:
        """Cumulative counters a load test differences: the server's CPU seconds (``server_cpu_s``, where
        there is a ``/proc``) and, from Triton's statistics, ``model``'s inferences (samples) and
        executions (batches the scheduler ran)."""
        import tritonclient.grpc as grpc

        out: Dict[str, float] = {}
        cpu = self.cpu_seconds()
        if cpu is not None:
            out["server_cpu_s"] = cpu
        client = grpc.InferenceServerClient(self.grpc_url)
        try:
            stats = client.get_inference_statistics(model).model_stats
        finally:
            client.close()
        out["inferences"] = float(sum(m.inference_count for m in stats))
        out["executions"] = float(sum(m.execution_count for m in stats))
        return out

    def failure(self) -> str:
        """The log lines that say what went wrong (``Poll failed for model directory …`` verbatim)."""
        lines = self.log().splitlines()
        picked = [ln for ln in lines if re.search(r"Poll failed|failed to (load|start)|error|Error|UNAVAILABLE", ln)]
        return " | ".join((picked or lines)[-5:]).strip() or f"no output (log: {self.log_path})"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group (Triton takes up to ~6 s to drain), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        try:  # stubs left in the group after the server itself exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(repository: Path, install: Optional[Install] = None, workdir: Optional[Path] = None,
          ports: Tuple[int, int] = (0, 0)):
    """Stage ``repository`` (swapping the platform when needed) and start a server on it (``ports``: HTTP and gRPC,
    0 for a free one).

    Returns ``(server, notes, tmpdir)``; the caller stops the server and removes ``tmpdir``."""
    install = install or find_server()
    tmp = Path(tempfile.mkdtemp(prefix="optimizer-triton-", dir=workdir))
    notes = stage(Path(repository), install, tmp / "repository")
    return (Server(tmp / "repository", install, tmp / "tritonserver.log", server_args(tmp / "repository", install),
                   ports), notes, tmp)


def server_args(repository: Path, install: Install) -> List[str]:
    """Flags the repository's configs need: ``--cache-config`` (and the install's ``caches`` directory) when a
    model enables ``response_cache`` (without a cache the server refuses such a model)."""

    configs = [read_config(p) for p in sorted(Path(repository).glob("*/config.pbtxt"))]
    if not any(c.response_cache.enable for c in configs):
        return []
    caches = Path(install.backend_dir).parent / "caches"
    return [f"--cache-config=local,size={RESPONSE_CACHE_BYTES}",
            *([f"--cache-directory={caches}"] if caches.is_dir() else [])]

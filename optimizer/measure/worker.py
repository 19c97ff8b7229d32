"""A measurement worker: one process that loads ONE variant and runs what the coordinator asks of it.

``python -m optimizer.measure.worker`` reads pickled requests ``(op, args)`` on stdin and answers each with
a pickled ``("ok", value)`` or ``("error", one line)`` on its original stdout; whatever the libraries print
goes to stderr (a log file the coordinator reads when the worker dies). Between requests it blocks on the
pipe, so a worker that is not timing uses no CPU once its runtime's thread pool has wound down.

``Worker`` is the coordinator's side: it starts the process with the recipe's thread settings in its
environment (``OMP_NUM_THREADS`` etc., read by the runtimes when they load) and turns a dead or failing
worker into a one-line ``OptimizerError`` naming the variant."""

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from optimizer.errors import OptimizerError, VariantFailed

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class _State:
    """What one worker holds: its session, the evaluation feeds, one batch per size, the memory baseline."""

    def __init__(self):
        self.session, self.pool, self.batches, self.base, self.gpu, self.state = None, None, {}, None, False, {}

    def load(self, artifact, hardware) -> Dict[str, float]:
        import time

        self.state = dict(artifact.meta.get("state") or {})
        self.artifact, self.hardware = artifact, hardware

        from optimizer.formats import load
        from optimizer.gpu import is_cuda
        from optimizer.measure.benchmark import reset_peak

        self.base = reset_peak()
        self.gpu = is_cuda(hardware)
        t0 = time.perf_counter()
        self.session = load(artifact, hardware)
        return {"load_seconds": time.perf_counter() - t0}

    def feeds(self, feeds) -> None:
        self.pool, self.batches = feeds, {}

    def predict(self, batch_size: int):
        from optimizer.evaluate import predict

        if self.state:  # a stateful model: one stream, each variant carrying its own state
            from optimizer.sources.state import stream_predict

            return stream_predict(self.session, self.pool, self.state)
        return predict(self.session, self.pool, batch_size)

    def profile(self, batch: int) -> Optional[Dict]:
        """The time breakdown at ``batch`` (``measure.profile``), or the reason there is none."""
        from optimizer.io import batch_of
        from optimizer.measure.profile import profile

        try:
            return profile(self.artifact, self.hardware, batch_of(self.pool, batch), batch)
        except Exception as e:  # noqa: BLE001 - a profiler failure costs the breakdown, not the variant
            return {"error": f"{type(e).__name__}: {e}"[:300]}

    def block(self, batch: int, cfg) -> Dict:
        from optimizer.io import batch_of
        from optimizer.measure.benchmark import timed_block

        if batch not in self.batches:
            self.batches[batch] = batch_of(self.pool, batch)
        x = self.batches[batch]
        return {**timed_block(lambda: self.session(x), cfg), "pid": os.getpid()}

    def memory(self) -> Dict[str, float]:
        from optimizer.measure.benchmark import peak_since

        record = peak_since(self.base)
        if self.gpu:  # device memory this process holds, whichever runtime allocated it
            from optimizer.gpu import process_memory_mb

            used = process_memory_mb(os.getpid())
            if used is None and "torch" in sys.modules:  # nvidia-smi sees no process of this PID namespace
                import torch

                if torch.cuda.is_initialized():  # torch's own and TensorRT sessions' buffers only
                    used = torch.cuda.max_memory_reserved() / 2**20
            if used is not None:
                record["gpu_memory_mb"] = used
        return record

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def serve(requests, replies) -> None:
    """Answer requests until ``close`` or the end of the input."""
    from optimizer.errors import one_line

    state = _State()
    while True:
        try:
            op, args = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = ("ok", getattr(state, op)(*args))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the coordinator as one line
            reply = ("error", f"{type(e).__name__}: {one_line(e)}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()
        if op == "close":
            return


def worker_env(threads: int) -> Dict[str, str]:
    """The coordinator's environment, with this package importable first and the recipe's thread count."""
    import optimizer

    root = str(Path(optimizer.__file__).resolve().parents[1])
    prefixes = tuple({sys.prefix, sys.base_prefix})
    extra = [p for p in sys.path if p and os.path.isdir(p) and not p.startswith(prefixes)]
    paths = [root, os.getcwd(), *os.environ.get("PYTHONPATH", "").split(os.pathsep), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in paths if p))}
    env.update({k: str(threads) for k in THREAD_VARIABLES})
    return env


class Worker:
    """The coordinator's handle on one worker process."""

    def __init__(self, name: str, threads: int):
        self.name = name
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "optimizer.measure.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=worker_env(threads))

    def send(self, op: str, *args) -> None:
        try:
            pickle.dump((op, args), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def receive(self) -> Any:
        try:
            status, value = pickle.load(self.proc.stdout)
        except (EOFError, pickle.UnpicklingError, OSError):
            raise self._died() from None
        if status == "error":
            raise VariantFailed(self.name, f"measuring {self.name}: {value}")
        return value

    def call(self, op: str, *args) -> Any:
        self.send(op, *args)
        return self.receive()

    def _died(self) -> VariantFailed:
        code = self.proc.wait(timeout=10)
        self.log.seek(0)
        lines = [ln for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        return VariantFailed(self.name, f"the measurement worker for {self.name} exited with code {code}: "
                                        f"{lines[-1].strip() if lines else 'no output'}")

    def kill(self) -> None:
        """Stop the worker now, mid-block (the run was interrupted or failed: its figures are not wanted)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Ask the worker to exit; kill it when it does not within 10 s."""
        try:
            if self.proc.poll() is None:
                self.call("close")
            self.proc.wait(timeout=10)
        except (OptimizerError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.log):
                stream.close()


def main() -> None:
    replies = os.fdopen(os.dup(1), "wb")  # the protocol keeps the real stdout ...
    os.dup2(2, 1)  # ... and whatever libraries print goes to stderr
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()

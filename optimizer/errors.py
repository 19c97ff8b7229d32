"""Typed errors. User mistakes raise a subclass of OptimizerError whose message names the
thing to fix; ``__main__`` prints it in one or two lines and exits with ``exit_code``."""

import contextlib

EXIT_OK = 0
EXIT_FAILED = 1  # a pass or variant failed at run time (also Hydra's own composition errors)
EXIT_RECIPE = 2  # the recipe or its inputs are wrong; nothing was run
EXIT_GATE = 3  # everything ran, but no variant met the recipe's constraints
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as a shell reports a killed process


def one_line(e: BaseException, limit: int = 300) -> str:
    """The innermost cause of ``e``, on one line, without terminal colour codes."""
    import re

    while e.__cause__ is not None and str(e.__cause__).strip():
        e = e.__cause__
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
    line = lines[0] if lines else type(e).__name__
    if len(line) <= limit:
        return line
    head = limit * 2 // 3  # the cause is often at the end of a long library message: keep both ends
    return f"{line[:head]} … {line[len(line) - (limit - head - 3):]}"


class OptimizerError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = EXIT_FAILED


class RecipeError(OptimizerError):
    """The recipe, an override, a model/data source or an input file is wrong."""

    exit_code = EXIT_RECIPE


class PassError(OptimizerError):
    """A pass failed while running; names the step."""

    def __init__(self, step: str, message: str):
        super().__init__(f"step '{step}': {message}")
        self.step = step


class ParityError(PassError):
    """A produced model disagrees numerically with its source beyond tolerance."""


class VariantFailed(OptimizerError):
    """One variant could not be loaded, run or timed (its worker said why, or died): that variant fails, the
    others are measured without it."""

    def __init__(self, variant: str, message: str):
        super().__init__(message)
        self.variant = variant


class DiskFull(OptimizerError):
    """No room left where the run writes (a full disk, a quota, a file-size limit) once work had begun: exit 1, a
    failure at run time (the recipe is fine, and what ran stays in the cache)."""


class Interrupted(OptimizerError):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run; the summary says ``interrupted``."""

    def __init__(self, signal_name: str, exit_code: int):
        super().__init__(f"interrupted by {signal_name}; the finished steps stay in the cache, a re-run reuses them")
        self.exit_code = exit_code


@contextlib.contextmanager
def interruptible():
    """SIGTERM and SIGINT become ``Interrupted`` (exit 143 / 130), so the run still writes its summary (status
    ``interrupted``); the previous handlers come back afterwards. Outside the main thread nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Interrupted("SIGTERM", EXIT_SIGTERM) if signum == signal.SIGTERM else Interrupted("SIGINT", EXIT_SIGINT)

    # SIGINT too, explicitly: a process started in the background of a shell inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt for it, so a Ctrl-C (or a CI runner's SIGINT) would be lost
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted("SIGINT", EXIT_SIGINT) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

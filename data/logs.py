"""What the command-line tools print while they work: logging, third-party chatter, progress.

- :func:`setup` (or the :func:`logging_options` click decorator, ``-v/--verbose`` and
  ``-q/--quiet``) sends the ``aqa`` loggers to stderr: info lines by default, warnings and errors
  only with ``--quiet``, debug lines and the native libraries' own output with ``-v``.
- :func:`native_output_quieted` silences the C/C++ libraries that write to the process's stderr
  themselves (MediaPipe's absl and TensorFlow Lite lines), which otherwise run through the progress
  bars: silenced unless ``-v``; what they wrote is shown if the block fails.
- :func:`progress_bar` is the one progress bar of the package: tqdm's bar on a terminal or in a
  notebook, and without one (a log file, a batch job) a line every :attr:`LineProgress.percent`
  percent with the rate and ETA instead of one long line of ``\\r`` updates.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import time
import warnings

from tqdm.std import tqdm as _std_tqdm

__all__ = ["setup", "logging_options", "native_output_quieted", "progress_bar", "LineProgress"]

#: environment variables that quiet native logging when set before the library is imported
#: (glog-based libraries, TensorFlow); a value the user set is kept
QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
#: Python loggers of third-party libraries, kept to warnings unless ``-v``
THIRD_PARTY_LOGGERS = ("absl", "mediapipe", "h5py", "matplotlib", "PIL")
#: Python loggers whose warnings are chatter too, kept to errors unless ``-v`` (torch.compile on a
#: CPU-only machine: "No CUDA runtime is found, using CUDA_HOME=...")
THIRD_PARTY_NOISY = ("torch.utils.cpp_extension",)

#: modules whose Python warnings are third-party chatter (MediaPipe's protobuf deprecations)
THIRD_PARTY_WARNINGS = (r"google\.protobuf(\..*)?",)

_state = {"third_party": False}  # show third-party output (set by setup(verbose>=1))


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a test runner swaps it per command)."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    """``message`` for info, ``warning: message`` / ``error: message`` / ``debug: message``."""

    def format(self, record):
        msg = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return msg
        return f"{record.levelname.lower()}: {msg}"


def setup(verbose: int = 0, quiet: bool = False) -> None:
    """Configure the ``aqa`` loggers for a command-line run: info (default), warning (``quiet``)
    or debug (``verbose >= 1``), one plain line each on stderr; third-party loggers and native
    output shown only with ``verbose``. Calling it again replaces the earlier setting."""
    log = logging.getLogger("aqa")
    for h in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    _state["third_party"] = bool(verbose)
    for names, level in ((THIRD_PARTY_LOGGERS, logging.WARNING), (THIRD_PARTY_NOISY, logging.ERROR)):
        for name in names:
            logging.getLogger(name).setLevel(logging.NOTSET if verbose else level)
    if not verbose:
        for k, v in QUIET_ENV.items():
            os.environ.setdefault(k, v)
        for module in THIRD_PARTY_WARNINGS:
            warnings.filterwarnings("ignore", module=module)


def logging_options(command):
    """Click decorator: ``-v/--verbose`` and ``-q/--quiet`` options that call :func:`setup` before
    the command runs. The command receives ``quiet`` (e.g. to hide progress bars), not ``verbose``.
    Put it right below the ``@group.command()`` line."""
    import click

    @functools.wraps(command)
    def wrapper(*args, verbose: int = 0, quiet: bool = False, **kwargs):
        if verbose and quiet:
            raise click.UsageError("-v/--verbose and -q/--quiet exclude each other")
        setup(verbose=verbose, quiet=quiet)
        return command(*args, quiet=quiet, **kwargs)

    wrapper = click.option("-q", "--quiet", is_flag=True,
                           help="No progress bars; warnings and errors only.")(wrapper)
    return click.option("-v", "--verbose", count=True,
                        help="Debug lines, and the output of third-party libraries "
                             "(MediaPipe, TensorFlow Lite), silenced by default.")(wrapper)


def _stderr_fd() -> int | None:
    """The file descriptor of ``sys.stderr`` when it writes to the process's stderr (fd 2)."""
    try:
        return 2 if sys.stderr.fileno() == 2 else None
    except (AttributeError, OSError, ValueError):  # a test runner's stand-in: not fd 2
        return None


@contextlib.contextmanager
def native_output_quieted():
    """Within the block, what native code writes to the process's stderr (file descriptor 2:
    MediaPipe's absl and TensorFlow Lite lines) goes to a temporary file, while Python's
    ``sys.stderr`` (warnings, progress bars, logging) still reaches the terminal. Not with
    ``-v`` (:func:`setup`). If the block raises, the captured text is written out first, so a
    native error message is not lost."""
    if _state["third_party"]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    swap = _stderr_fd() is not None
    old_stderr = sys.stderr
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        if swap:  # Python's own output keeps going where stderr went
            sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, closefd=True)
        try:
            yield
        except BaseException:
            _restore(saved, swap, old_stderr)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                sys.stderr.write(text + "\n")
            raise
        else:
            _restore(saved, swap, old_stderr)


def _restore(saved: int, swap: bool, old_stderr) -> None:
    if swap:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = old_stderr
    os.dup2(saved, 2)
    os.close(saved)


class _Null:
    """Where tqdm's own writes go in a :class:`LineProgress` (it writes its lines itself)."""

    def write(self, s):
        return len(s)

    def flush(self):
        pass


class LineProgress(_std_tqdm):
    """tqdm for output that is not a terminal: instead of redrawing one line with ``\\r``, it
    writes a full line (tqdm's meter: count, elapsed, ETA, rate) each time the work passes
    another :attr:`percent` percent, and every :attr:`seconds` seconds when the total is unknown.
    Bars that close with ``leave=False`` are not cleared: each line stays."""

    percent = 10
    seconds = 30.0

    def __init__(self, *args, **kwargs):
        self._out = kwargs.pop("file", None) or sys.stderr
        self._t0, self._last = time.time(), 0  # step 0 ("0 done": no rate nor ETA) is not written
        kwargs.update(file=_Null(), mininterval=0, miniters=1, dynamic_ncols=False)
        fmt = kwargs.pop("bar_format", None)
        super().__init__(*args, **kwargs)
        self.bar_format = fmt or ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<"
                                  "{remaining}, {rate_fmt}{postfix}]" if self.total else
                                  "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}{postfix}]")

    def _mark(self) -> int:
        """The step the work is at: percent // :attr:`percent`, or elapsed // :attr:`seconds`."""
        if self.total:
            return min(100, int(100 * self.n / self.total)) // self.percent
        return int((time.time() - self._t0) // self.seconds)

    def display(self, msg=None, pos=None):
        if msg is not None:  # tqdm clearing its line: nothing to clear
            return True
        mark = self._mark()
        if mark != self._last:
            self._last = mark
            self._write()
        return True

    def _write(self):
        try:
            self._out.write(self.__str__().strip() + "\n")
            self._out.flush()
        except ValueError:  # the stream was closed (an interpreter shutting down)
            pass

    def close(self):
        if getattr(self, "disable", True):
            return
        if self.total is None or self._mark() != self._last:  # the last state, unless written
            self._last = self._mark()
            self._write()
        super().close()


def _interactive(file) -> bool:
    from tqdm.auto import tqdm as auto

    if any(c.__module__ == "tqdm.notebook" for c in auto.__mro__):
        return True
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable=None, **kwargs):
    """A progress bar with tqdm's arguments (``total``, ``desc``, ``unit``, ``disable``,
    ``leave``...): tqdm's own on a terminal or in a notebook, else a :class:`LineProgress`."""
    from tqdm.auto import tqdm as auto

    file = kwargs.get("file") or sys.stderr
    cls = auto if _interactive(file) else LineProgress
    return cls(iterable, **kwargs)

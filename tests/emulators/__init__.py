"""Shared plumbing for starting local emulators and services from the test suite.

Each emulator gets its own virtual environment (their pins conflict with each other and
with sygnify's) under ``.emulators/`` (or ``$SYGNIFY_EMULATOR_HOME``), created on first use
and reused while its requirements are unchanged. Processes bind to 127.0.0.1 on free ports
and are stopped at the end of the test session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("SYGNIFY_EMULATOR_HOME", REPO / ".emulators"))


class EmulatorUnavailable(RuntimeError):
    """The emulator could not be installed or started (tests skip, or fail in CI)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: Sequence[str], *, cwd: Path | None = None, timeout: float = 900) -> None:
    result = subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise EmulatorUnavailable(
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def ensure_venv(name: str, requirements: Sequence[str], *, python: str | None = None) -> Path:
    """A virtual environment with ``requirements`` installed; returns its ``bin`` directory."""
    python = python or sys.executable
    if not Path(python).exists():
        raise EmulatorUnavailable(f"{name} needs the interpreter {python}, which is not installed")
    venv = HOME / name
    marker = venv / ".requirements"
    wanted = hashlib.sha256("\n".join([python, *requirements]).encode()).hexdigest()
    with _locked(name):
        if marker.exists() and marker.read_text() == wanted:
            return venv / "bin"
        if venv.exists():
            _run(["rm", "-rf", str(venv)])
        _run([python, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements])
        marker.write_text(wanted)
    return venv / "bin"


def ensure_npm_package(name: str, package: str) -> Path:
    """``npm install package`` into its own prefix; returns ``node_modules/.bin``."""
    prefix = HOME / name
    marker = prefix / ".package"
    with _locked(name):
        if not (marker.exists() and marker.read_text() == package):
            prefix.mkdir(parents=True, exist_ok=True)
            _run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), package])
            marker.write_text(package)
    return prefix / "node_modules" / ".bin"


def wait_for_port(port: int, *, timeout: float = 60, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmulatorUnavailable(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise EmulatorUnavailable(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def wait_for_http(url: str, *, timeout: float = 60, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmulatorUnavailable(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise EmulatorUnavailable(f"{url} did not answer within {timeout} s")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL (Linux).

    Servers run in their own session (so a Ctrl-C aimed at pytest does not hit them first);
    without this, a test run killed from outside would leave them running.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, 15, 0, 0, 0)


class ManagedProcess:
    """A background server process whose output goes to a log file under ``.emulators/logs``."""

    def __init__(
        self, name: str, command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ):
        logs = HOME / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = logs / f"{name}-{os.getpid()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            list(command),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # test-only; servers are started from the main thread
        )

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, check: Callable[[], None]) -> None:
        try:
            check()
        except EmulatorUnavailable as exc:
            self.stop()
            raise EmulatorUnavailable(f"{self.name}: {exc}\n--- log ---\n{self.log_tail()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self._log.close()

"""Child processes of the rehearsal: own process group, progress, time and peak memory.

Every child runs in a new session (its own process group), so Ctrl-C in the terminal
reaches only the rehearsal, which then ends the whole group of the step in flight
(SIGTERM, then SIGKILL after a grace period). Peak memory is the larger of
  * the highest sum of VmRSS over the group's processes, sampled from /proc, and
  * the highest VmHWM (peak since exec) of any single process of the group.
(wait4's ru_maxrss is not used: Linux carries the parent's peak over fork+exec, so every
child would report at least the rehearsal's own size.)
No psutil: /proc is read directly (Linux only, as the rest of the tooling).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15.0
GRACE_SECONDS = 5.0


class StepFailed(RuntimeError):
    """A child exited non-zero; the message carries the tail of its output."""

    def __init__(self, step: str, returncode: int, tail: list[str], log_path: Path | None):
        self.step, self.returncode, self.tail, self.log_path = step, returncode, tail, log_path
        last = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
        self.short = f"step {step!r} failed (exit {returncode}): {last[:300]}"
        where = f"\n  full output: {log_path}" if log_path else ""
        body = "\n".join(f"  | {line}" for line in tail)
        super().__init__(f"step {step!r} failed (exit {returncode}); last lines:\n{body}{where}")


@dataclass
class ChildResult:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    output: list[str] = field(default_factory=list)


_current: dict[int, subprocess.Popen] = {}
_lock = threading.Lock()


def group_rss_bytes(pgid: int, hwm: dict | None = None) -> int:
    """Sum of VmRSS of every process whose process group is ``pgid``.

    With ``hwm``, also records each process's VmHWM (its own peak since exec), which catches
    a spike between two samples.
    """
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            # fields after the parenthesised comm: state ppid pgrp ...
            rest = stat[stat.rindex(b")") + 2 :].split()
            if int(rest[2]) != pgid:
                continue
            with open(f"/proc/{entry.name}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:") and hwm is not None:
                        hwm[entry.name] = max(hwm.get(entry.name, 0), int(line.split()[1]) * 1024)
                    elif line.startswith(b"VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total


def terminate_group(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM the child's process group, SIGKILL it if it is still there after ``grace``."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True


def terminate_all() -> None:
    """End every child still running (called on Ctrl-C / SIGTERM and at exit)."""
    with _lock:
        procs = list(_current.values())
    for proc in procs:
        terminate_group(proc)


def run(
    argv: Sequence[str],
    *,
    env: dict | None = None,
    cwd: str | None = None,
    log_path: Path | None = None,
    label: str = "",
    echo: Callable[[str], None] = lambda line: print(line, flush=True),
    show_output: bool = True,
    heartbeat: float = HEARTBEAT_SECONDS,
    tail_lines: int = 40,
    keep_output: bool = False,
) -> ChildResult:
    """Run ``argv`` in its own process group; stream its output; measure it.

    Output lines go to ``log_path`` (all of them) and, with ``show_output``, to ``echo``
    prefixed by ``label``. Without output for ``heartbeat`` seconds a progress line with
    the elapsed time and current memory is printed, so a long step is never silent.
    """
    started = time.monotonic()
    logf = open(log_path, "a", encoding="utf-8") if log_path else None
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    with _lock:
        _current[proc.pid] = proc
    tail: deque[str] = deque(maxlen=tail_lines)
    kept: list[str] = []
    last_line = [time.monotonic()]

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if keep_output:
                kept.append(line)
            if logf:
                logf.write(line + "\n")
            if show_output:
                echo(f"  {label}{line}")
                last_line[0] = time.monotonic()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    hwm: dict[str, int] = {}
    try:
        peak = _wait(
            proc,
            hwm,
            last_line,
            lambda rss, now: echo(f"  {label}... still running, {now - started:.0f}s, {rss / 2**20:.0f} MB"),
            heartbeat,
        )
        # grandchildren left behind in the group (daemons) must not outlive the step
        if _group_alive(proc.pid):
            terminate_group(proc, grace=1.0)
        reader.join(timeout=5)
    except BaseException:
        terminate_group(proc)
        raise
    finally:
        with _lock:
            _current.pop(proc.pid, None)
        if logf:
            logf.close()
    return ChildResult(
        proc.returncode, time.monotonic() - started, max([peak, *hwm.values()]), kept if keep_output else list(tail)
    )


def _wait(
    proc: subprocess.Popen,
    hwm: dict[str, int],
    last_line: list[float],
    beat: Callable[[int, float], None],
    heartbeat: float,
) -> int:
    """Poll until ``proc`` ends (sets its returncode); sample the group's memory and call
    ``beat(rss, now)`` after ``heartbeat`` seconds without output. Returns the peak summed RSS."""
    peak = 0
    while True:
        try:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by terminate_group (Ctrl-C from another thread)
            proc.wait()
            return peak
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return peak
        rss = group_rss_bytes(proc.pid, hwm)
        peak = max(peak, rss)
        now = time.monotonic()
        if heartbeat and now - last_line[0] >= heartbeat:
            beat(rss, now)
            last_line[0] = now
        time.sleep(POLL_SECONDS)


def check(result: ChildResult, step: str, log_path: Path | None) -> ChildResult:
    if result.returncode != 0:
        raise StepFailed(step, result.returncode, result.output[-20:], log_path)
    return result


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into the same unwinding as Ctrl-C."""


def install_signal_handlers() -> None:
    def on_term(signum, frame):  # noqa: ARG001
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def python_of(venv: Path) -> str:
    return str(venv / "bin" / "python") if venv else sys.executable

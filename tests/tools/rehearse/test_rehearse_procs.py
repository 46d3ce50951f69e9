"""Child processes: own process group, nothing left behind, peak memory, progress lines."""

import os
import sys
import threading
import time

import pytest

from tools.rehearse import procs


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_child_runs_in_its_own_process_group_and_output_is_streamed(tmp_path):
    lines = []
    res = procs.run(
        [sys.executable, "-c", "import os; print(os.getpgid(0) == os.getpid())"],
        echo=lines.append,
        label="[t] ",
        log_path=tmp_path / "t.log",
    )
    assert res.returncode == 0
    assert lines == ["  [t] True"]
    assert (tmp_path / "t.log").read_text() == "True\n"


def test_peak_memory_of_the_child_is_measured():
    code = "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(0.6)"
    res = procs.run([sys.executable, "-c", code], echo=lambda s: None)
    assert res.returncode == 0
    assert res.peak_rss_bytes >= 150 * 2**20


def test_failure_carries_the_tail(tmp_path):
    res = procs.run([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], echo=lambda s: None)
    with pytest.raises(procs.StepFailed) as exc:
        procs.check(res, "export", tmp_path / "x.log")
    assert exc.value.returncode == 3 and "| boom" in str(exc.value)


def test_silent_child_gets_progress_lines():
    lines = []
    procs.run([sys.executable, "-c", "import time; time.sleep(1.2)"], echo=lines.append, heartbeat=0.3, label="[slow] ")
    assert any("[slow] ... still running" in line for line in lines)


def test_terminate_all_leaves_no_process_of_the_group(tmp_path):
    pidfile = tmp_path / "pids"
    script = (
        "import subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{kid.pid}}')\n"
        "time.sleep(60)\n"
    )
    box = {}

    def target():
        box["res"] = procs.run([sys.executable, "-c", script], echo=lambda s: None)

    t = threading.Thread(target=target)
    t.start()
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.1)
    grandchild = int(pidfile.read_text())
    assert alive(grandchild)
    procs.terminate_all()
    t.join(timeout=20)
    assert not t.is_alive()
    assert box["res"].returncode != 0
    for _ in range(50):
        if not alive(grandchild):
            break
        time.sleep(0.1)
    assert not alive(grandchild)


def test_leftover_daemon_of_a_finished_step_is_ended(tmp_path):
    pidfile = tmp_path / "pid"
    script = (
        "import subprocess, sys\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " stdout=subprocess.DEVNULL)\n"
        f"open({str(pidfile)!r}, 'w').write(str(kid.pid))\n"
    )
    res = procs.run([sys.executable, "-c", script], echo=lambda s: None)
    assert res.returncode == 0
    pid = int(pidfile.read_text())
    for _ in range(30):
        if not alive(pid):
            break
        time.sleep(0.1)
    assert not alive(pid)

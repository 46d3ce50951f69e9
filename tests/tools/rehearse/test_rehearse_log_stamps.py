"""Issue 13 item 11: generated task-log events are stamped inside the task's run (Airflow's
CloudWatch reader serves a try's events only up to the task's end), each try in its own slice."""

from tools.rehearse.checks import task_log_timestamps
from tools.rehearse.report import render


def test_events_fall_inside_the_run_and_tries_do_not_overlap():
    start, end = 1_000_000, 1_600_000
    tries = [task_log_timestamps(start, end, a, 3, 3) for a in (1, 2, 3)]
    for stamps in tries:
        assert all(start < t <= end for t in stamps) and stamps == sorted(stamps)
    assert max(tries[0]) < min(tries[1]) and max(tries[1]) < min(tries[2])


def test_a_run_without_duration_still_gets_ordered_stamps():
    stamps = task_log_timestamps(5_000, 5_000, 1, 1, 3)
    assert stamps == sorted(stamps) and len(set(stamps)) == 3 and stamps[0] > 5_000


def test_render_says_whether_the_log_was_read_back():
    logs = {
        "rehearsed": True,
        "source_streams": 2,
        "target_streams": 2,
        "import": {},
        "ok": False,
        "read_back": {"task": "d.t r try 2", "ok": False, "problem": "stream x: 3 events, 0 inside the run"},
    }
    text = render({"rehearsal": {"source_version": "2.10.3", "target_version": "2.11.0", "mode": "m", "error": None},
                   "task_logs": logs})  # fmt: skip
    assert "read back through the target's log reader (d.t r try 2): NOT OK: stream x" in text

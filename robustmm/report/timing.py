"""``timing.json``: where the time of a run went, over every process that worked on it.

A run stopped and continued with ``--resume`` is trained by several processes. Each one adds a segment
to ``processes`` (started, seconds, training seconds per method, peak memory, ``finished``: whether it
ended the run) and keeps it up to date while it runs: after each method, when it stops (an error, Ctrl-C)
and every :data:`EVERY` seconds from a background thread (whatever the process is doing: loading,
training, evaluating), so a process killed with SIGKILL or by a power cut loses at most that much of its
time. The top-level keys sum the segments: ``<method id>``, its training seconds; ``total``, the seconds
of all processes; ``peak_rss_mb``, the largest peak of any process.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

from robustmm.io import write_json_atomic

TIMING_FILE = "timing.json"
#: seconds between two updates of the running process's segment (a write costs an fsync)
EVERY = 10.0
_SUMS = ("total", "peak_rss_mb", "processes")

log = logging.getLogger("robustmm")


def earlier_segments(path: Path) -> list[dict[str, Any]]:
    """The segments of the processes that worked on the run before this one (none for a new run). A
    timing.json of an older robustmm (one process, no ``processes``) is its one segment."""
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:  # never a reason to stop a resume: the times of earlier processes are lost
        log.warning("%s cannot be read (%s); the times of the processes before this one are not counted", path, exc)
        return []
    if isinstance(doc.get("processes"), list):
        return [s for s in doc["processes"] if isinstance(s, dict)]
    return [{"started": None, "seconds": doc.get("total"), "finished": True, "peak_rss_mb": doc.get("peak_rss_mb"),
             "methods": {k: v for k, v in doc.items() if k not in _SUMS}}]


class RunTiming:
    """This process's segment of ``run_dir``'s timing.json, recorded while the ``with`` block runs
    (``write=False``: kept, never written, as on the ranks of a distributed run other than 0)."""

    def __init__(self, run_dir: Path, write: bool = True) -> None:
        self.path = Path(run_dir) / TIMING_FILE
        self.write = write
        self.earlier = earlier_segments(self.path) if write else []
        self.started = time.time()
        self.methods: dict[str, float] = {}
        self.current: tuple[str, float] | None = None  # the method training now and since when
        self.finished = False
        self._lock = threading.Lock()  # the recorder thread and the run write the same file
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "RunTiming":
        self.update()
        if self.write:
            self._thread = threading.Thread(target=self._record, name="robustmm-timing", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.update()  # the time up to the end, also of a process stopped by an error or Ctrl-C
        except OSError:
            if exc_type is None:
                raise  # else the error that stopped the run is the one to report (e.g. a full disk)

    def _record(self) -> None:
        while not self._stop.wait(EVERY):
            try:
                self.update()
            except OSError as exc:  # a full disk: the run itself reports what it cannot write
                log.warning("could not update %s (%s)", self.path, exc)

    def start_method(self, run_id: str) -> None:
        self.current = (run_id, time.time())

    def end_method(self, run_id: str) -> None:
        """``run_id`` finished training in this process."""
        with self._lock:
            self.methods[run_id] = round(time.time() - self.current[1], 2) if self.current else 0.0
            self.current = None
        self.update()

    def add(self, run_id: str, seconds: float) -> None:
        """Training time of ``run_id`` spent outside its fit (``Method.deferred_training_seconds``)."""
        with self._lock:
            self.methods[run_id] = round(self.methods.get(run_id, 0.0) + seconds, 2)

    def finish(self) -> None:
        """The run is complete (this process wrote its results)."""
        self.finished = True
        self.update()

    def segment(self) -> dict[str, Any]:
        methods = dict(self.methods)
        if self.current is not None:  # in progress: its time so far
            methods[self.current[0]] = round(time.time() - self.current[1], 2)
        return {"started": _dt.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"),
                "seconds": round(time.time() - self.started, 2), "finished": self.finished,
                "resumed": bool(self.earlier), "pid": os.getpid(), "methods": methods,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}

    def document(self) -> dict[str, Any]:
        segments = [*self.earlier, self.segment()]
        sums: dict[str, Any] = {}
        for s in segments:
            for run_id, seconds in (s.get("methods") or {}).items():
                sums[run_id] = round(sums.get(run_id, 0.0) + float(seconds or 0.0), 2)
        peaks = [s["peak_rss_mb"] for s in segments if isinstance(s.get("peak_rss_mb"), (int, float))]
        return {**sums, "total": round(sum(float(s.get("seconds") or 0.0) for s in segments), 2),
                "peak_rss_mb": max(peaks) if peaks else None, "processes": segments}

    def update(self) -> None:
        if self.write:
            with self._lock:
                write_json_atomic(self.path, self.document())

"""Where a sweep's trials live, and how workers notice a lost worker.

Storage URLs:

* ``sqlite:///path/optuna.db`` -- the default, a file in the sweep folder; workers on one machine;
* ``postgresql://user@host/db``, ``mysql+pymysql://...`` -- many workers on many machines;
* ``journal:path/to/sweep.journal`` -- Optuna's append-only journal file, for many workers on a
  shared file system without a database server.

Every running trial records a heartbeat; a worker that finds a running trial without one for
``grace`` seconds marks it failed and queues a retry with the same parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``). Optuna's database storages keep heartbeats themselves; for
the journal file the heartbeat is a trial system attribute with the writer's clock, so workers'
clocks must agree to well within ``grace`` (NTP).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import threading
import time
import warnings
from collections.abc import Iterator
from functools import partial
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from robustmm.errors import ConfigError
from robustmm.tune.config import HeartbeatConfig

log = logging.getLogger("robustmm")

JOURNAL_PREFIX = "journal:"
#: trial system attribute holding a journal trial's last heartbeat (seconds since the epoch)
JOURNAL_HEARTBEAT_ATTR = "robustmm:heartbeat"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
CONNECT_ATTEMPTS = 3


def default_storage_url(sweep_dir: Path) -> str:
    path = str((Path(sweep_dir) / "optuna.db").resolve())
    # SQLAlchemy ends the path at '?' (the query) and decodes %XX in it
    return "sqlite:///" + path.replace("%", "%25").replace("?", "%3F")


def sqlite_file(url: str) -> Path | None:
    """The file of an ``sqlite:///`` URL as SQLAlchemy reads it (``:memory:`` for none); None for other URLs."""
    if not url.startswith("sqlite:///"):
        return None
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or ":memory:")


#: query parameters of a database URL whose values are secrets (drivers accept e.g. ?password=)
_SECRET_QUERY = re.compile(r"([?&][^=&]*(?:pass|secret|token)[^=&]*=)[^&]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its password (safe to write into files and logs). Everything between the
    user name and the last '@' of the address is hidden: a password with an unescaped '@' is
    parsed by SQLAlchemy as a shorter password and a host holding the rest, which its own
    redaction would show."""
    if url.startswith(JOURNAL_PREFIX) or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    address, query = (rest.split("?", 1) + [""])[:2]
    at = address.rfind("@")
    if at >= 0 and ":" in address[:at]:
        address = address[:at].split(":", 1)[0] + ":***" + address[at:]
    return f"{scheme}://{address}" + (_SECRET_QUERY.sub(r"\1***", "?" + query) if query else "")


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retry_stale_trial(heartbeat: HeartbeatConfig, study: optuna.Study, trial: FrozenTrial) -> None:
    """A running trial lost its worker and is failed already: queue it again if retries remain."""
    retries = len(trial.system_attrs.get("retry_history", []))
    if retries < heartbeat.max_retry:
        log.warning("trial %d lost its worker (no heartbeat for %ds): marked failed and queued again",
                    trial.number, heartbeat.grace_seconds)
    else:
        log.warning("trial %d lost its worker (no heartbeat for %ds): marked failed; it was retried %d times "
                    "already (sweep.heartbeat.max_retry), so it is not queued again", trial.number,
                    heartbeat.grace_seconds, retries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=heartbeat.max_retry)(study, trial)


@dataclass
class SweepStorage:
    """An Optuna storage plus the worker-side heartbeat and queue-lock operations."""

    url: str
    backend: BaseStorage
    heartbeat_cfg: HeartbeatConfig
    #: a local file lock serialising queue operations on SQLite, whose driver cannot lock a row
    lock_path: Path | None = None

    @property
    def is_journal(self) -> bool:
        return isinstance(self.backend, JournalStorage)

    # ------------------------------------------------------------------ queue lock
    @contextlib.contextmanager
    def queue_lock(self) -> Iterator[None]:
        """Held while failing stale trials and taking a waiting one, so that two SQLite workers
        never both take the same trial or both retry the same lost one. PostgreSQL/MySQL lock the
        row (SELECT ... FOR UPDATE) and the journal orders writes, so they need no extra lock."""
        with _file_lock(self.lock_path):
            yield

    # ------------------------------------------------------------------ heartbeats
    def beat(self, trial_id: int) -> None:
        if self.is_journal:
            self.backend.set_trial_system_attr(trial_id, JOURNAL_HEARTBEAT_ATTR, time.time())
        else:
            self.backend.record_heartbeat(trial_id)

    @contextlib.contextmanager
    def heartbeat(self, trial_id: int, number: int) -> Iterator[None]:
        """Record heartbeats from a background thread while the trial runs."""
        stop = threading.Event()

        def run() -> None:
            while True:
                try:
                    self.beat(trial_id)
                except Exception as exc:  # a busy database must not end the heartbeat thread
                    log.warning("trial %d: heartbeat not recorded (%s); retrying", number, exc)
                if stop.wait(self.heartbeat_cfg.interval):
                    return

        thread = threading.Thread(target=run, name=f"robustmm-heartbeat-{number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def fail_stale(self, study: optuna.Study) -> None:
        """Fail every running trial whose heartbeat is older than the grace period (and retry it)."""
        study_id = self.backend.get_study_id_from_name(study.study_name)
        if not self.is_journal:
            # as optuna.storages.fail_stale_trials, but the failed trial says why (user attr "error")
            stale_ids = getattr(self.backend, "_get_stale_trial_ids", None)
            if stale_ids is None:  # pragma: no cover - an Optuna without the helper
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                return
            for trial_id in stale_ids(study_id):
                self._fail_lost(study, trial_id)
            return
        now = time.time()
        for trial in self.backend.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = trial.system_attrs.get(JOURNAL_HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:  # killed before its first heartbeat
                last = trial.datetime_start.timestamp()
            if last is None or now - float(last) <= self.heartbeat_cfg.grace_seconds:
                continue
            trial_id = self.backend.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            self._fail_lost(study, trial_id)

    def _fail_lost(self, study: optuna.Study, trial_id: int) -> None:
        """Fail a running trial whose worker was lost, with the reason in its ``error`` attribute, and
        queue its retry."""
        message = (f"lost its worker: no heartbeat for more than {self.heartbeat_cfg.grace_seconds}s (the worker "
                   "process was killed, or its machine stopped or lost the storage); queued again while "
                   "sweep.heartbeat.max_retry allows")
        try:
            self.backend.set_trial_user_attr(trial_id, "error", message)
            if not self.backend.set_trial_state_values(trial_id, state=TrialState.FAIL):
                return
        except UpdateFinishedTrialError:  # another worker failed (or the trial finished) first
            return
        retry_stale_trial(self.heartbeat_cfg, study, self.backend.get_trial(trial_id))


def open_storage(url: str, heartbeat: HeartbeatConfig) -> SweepStorage:
    """Open (creating if needed) the storage at ``url``; ConfigError says how to fix a bad URL."""
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):]).expanduser()
        if not str(path).strip():
            raise ConfigError(f"storage '{url}': give the journal file after 'journal:' (e.g. journal:sweep.journal)")
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalStorage(JournalFileBackend(str(path)))
        return SweepStorage(url, backend, heartbeat)
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in RDB_SCHEMES:
        raise ConfigError(f"storage '{redact(url)}' is not understood; use sqlite:///FILE, postgresql://USER@HOST/DB, "
                          "mysql+pymysql://USER@HOST/DB or journal:FILE")
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    lock_path = None
    if scheme == "sqlite":
        database = sqlite_file(url)
        if database is not None and database != Path(":memory:"):
            database.parent.mkdir(parents=True, exist_ok=True)
            lock_path = Path(f"{database}.lock")
        # several local workers write at once: wait for the file lock instead of failing at once
        engine_kwargs = {"connect_args": {"timeout": 120}}
    attempt = 1
    while True:
        try:
            # on a new SQLite file the lock also keeps local workers from creating the tables together
            with _file_lock(lock_path), warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                backend = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat.interval,
                                     grace_period=heartbeat.grace_seconds,
                                     heartbeat_stale_trial_callback=partial(retry_stale_trial, heartbeat))
            return SweepStorage(url, backend, heartbeat, lock_path)
        except ImportError as exc:
            raise ConfigError(f"storage '{redact(url)}' needs a database driver that is not installed ({exc}); "
                              "for PostgreSQL: pip install psycopg2-binary (or robustmm[postgres])") from None
        except Exception as exc:  # sqlalchemy errors: server down, bad credentials, or a race (see below)
            if attempt >= CONNECT_ATTEMPTS:
                raise ConfigError(f"cannot open storage '{redact(url)}': {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}; check that the database server "
                                  "is running and the URL, user and database are right") from None
            # workers starting together on a new database race to create Optuna's tables; the
            # loser's unique-constraint error goes away once the tables exist
            time.sleep(attempt)
            attempt += 1

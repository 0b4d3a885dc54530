"""The trial queue that any number of workers share through one storage.

A sweep of N trials is N *slots*: the process that creates the study queues N waiting trials
(the first ones with ``initial_trials`` parameters) and only then marks the study ready. Workers
take waiting trials one at a time (atomically, see :meth:`SweepStorage.queue_lock`) and never
create trials of their own, so the study ends with exactly N finished slots however many
workers join, whenever they join. A slot ends complete, pruned or failed; a slot whose worker
died is failed by the heartbeat check and queued again as a retry, so it is never silently lost.

A worker stops when no trial is waiting and none is running anywhere (it waits while others
still run, since a lost one may come back as a retry), or at its timeout.
"""

from __future__ import annotations

import logging
import math
import socket
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from robustmm.config.loader import config_differences, describe_differences
from robustmm.errors import ConfigError
from robustmm.text import counted
from robustmm.tune.storage import SweepStorage, redact

log = logging.getLogger("robustmm")

#: study user attribute: how many slots are queued (set once they are, so joiners can start)
BUDGET_ATTR = "robustmm:n_trials"
#: study user attribute: the resolved base study (search space included) its sweep was started with
IDENTITY_ATTR = "robustmm:study"
#: how long a joining worker waits for the creating worker to finish queueing
QUEUE_WAIT_S = 300.0

Objective = Callable[[optuna.Trial], "float | Sequence[float]"]


class SweepAbort(ConfigError):
    """A mistake in the sweep setup that every trial would hit (e.g. an objective naming a
    scenario the study does not evaluate): the worker records the trial as failed and stops."""


@dataclass
class WorkerReport:
    """What one worker did."""

    ran: list[int] = field(default_factory=list)
    states: Counter = field(default_factory=Counter)
    stopped: str = "done"  # done | timeout

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.states.items())) or "none"
        return f"this worker ran {counted(len(self.ran), 'trial')} ({counts}); stopped: {self.stopped}"


# --------------------------------------------------------------------------- study set-up
def lock_study_name(study_name: str, what: str) -> str:
    """Name of an empty study used as a one-time lock: creating a study is atomic in every storage."""
    return f"{study_name}::robustmm-{what}"


def try_lock(storage: SweepStorage, study_name: str, what: str) -> bool:
    try:
        optuna.create_study(storage=storage.backend, study_name=lock_study_name(study_name, what))
    except DuplicatedStudyError:
        return False
    return True


def release_lock(storage: SweepStorage, study_name: str, what: str) -> None:
    optuna.delete_study(study_name=lock_study_name(study_name, what), storage=storage.backend)


def open_study(storage: SweepStorage, study_name: str, directions: Sequence[str], n_trials: int,
               sampler: optuna.samplers.BaseSampler | None = None, pruner: optuna.pruners.BasePruner | None = None,
               initial_trials: Sequence[dict[str, Any]] = (), identity: dict[str, Any] | None = None) -> optuna.Study:
    """Create the study with ``n_trials`` queued slots, or join it (waiting until it is queued).

    Joining with a larger ``n_trials`` adds slots (once, whoever asks first); a smaller one
    leaves the study's budget as it is. ``identity`` (the sweep's base study) is stored by the
    creator; a worker whose identity differs is refused.
    """
    directions = list(directions)
    kwargs = {"storage": storage.backend, "study_name": study_name, "sampler": sampler, "pruner": pruner}
    try:
        study = optuna.create_study(directions=directions, load_if_exists=False, **kwargs)
    except DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        existing = [d.name.lower() for d in study.directions]
        if existing != directions:
            raise ConfigError(f"study '{study_name}' in {redact(storage.url)} optimizes {existing}, but this sweep "
                              f"asks for {directions}; use another --study-name for a different objective") from None
        budget = _wait_for_budget(study, storage, 1)
        _check_identity(study, storage, identity)
        if n_trials > budget:
            _raise_budget(study, storage, budget, n_trials)
        elif n_trials < budget:
            log.info("study %s already has %d trials queued; this worker helps finish all of them",
                     study_name, budget)
        return study
    if identity is not None:  # before the budget, which tells joiners the study is ready
        study.set_user_attr(IDENTITY_ATTR, identity)
    _queue(study, n_trials, initial_trials)
    study.set_user_attr(BUDGET_ATTR, n_trials)
    log.info("study %s created in %s with %d trials queued", study_name, redact(storage.url), n_trials)
    return study


def _check_identity(study: optuna.Study, storage: SweepStorage, identity: dict[str, Any] | None) -> None:
    """Trials of two different sweeps in one study would be ranked against each other."""
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if identity is None or stored is None:  # a study made through the Python API without one
        return
    differences = config_differences(stored, identity)
    if differences:
        raise ConfigError(f"study '{study.study_name}' in {redact(storage.url)} belongs to a sweep of another study "
                          f"({describe_differences(differences)}); join it with the same study file, --set and "
                          "--profile options, or give this sweep another --study-name")


def _raise_budget(study: optuna.Study, storage: SweepStorage, budget: int, n_trials: int) -> None:
    """Queue the slots from ``budget`` up to ``n_trials``. One worker at a time raises from a given
    budget (a lock per starting budget): two workers asking for more at once would otherwise both
    count from the same old budget and queue the difference twice."""
    while n_trials > budget:
        lock = f"budget-from-{budget}"
        if try_lock(storage, study.study_name, lock):
            _queue(study, n_trials - budget, ())
            study.set_user_attr(BUDGET_ATTR, n_trials)
            log.info("study %s: budget raised from %d to %d trials", study.study_name, budget, n_trials)
            return
        # another worker is raising it: start again from the budget it sets
        budget = _wait_for_budget(study, storage, budget + 1, lock_study_name(study.study_name, lock))


def _queue(study: optuna.Study, count: int, initial_trials: Sequence[dict[str, Any]]) -> None:
    fixed = list(initial_trials)[:count]
    for params in fixed:
        study.enqueue_trial(params)
    for _ in range(count - len(fixed)):
        study.enqueue_trial({})


def _wait_for_budget(study: optuna.Study, storage: SweepStorage, at_least: int, raising_lock: str | None = None) -> int:
    """The stored budget once it is at least ``at_least``. ``raising_lock``: the lock of the worker
    raising the budget that this one waits for (None: it waits for the creator to queue the study)."""
    deadline = time.monotonic() + QUEUE_WAIT_S
    while True:
        budget = study.user_attrs.get(BUDGET_ATTR)
        if budget is not None and budget >= at_least:
            return int(budget)
        if time.monotonic() > deadline:
            if raising_lock is not None:
                raise ConfigError(f"study '{study.study_name}' in {redact(storage.url)}: another worker began raising "
                                  f"its budget but never finished (it stopped?); delete its lock with `optuna "
                                  f"delete-study --study-name '{raising_lock}' --storage URL` and start this worker again")
            raise ConfigError(f"study '{study.study_name}' in {redact(storage.url)} exists but its trials were never "
                              f"queued (the worker creating it stopped?); delete it with `optuna delete-study "
                              f"--study-name {study.study_name} --storage URL` or use another --study-name")
        time.sleep(1.0)


# --------------------------------------------------------------------------- the worker loop
def run_worker(study: optuna.Study, storage: SweepStorage, objective: Objective, timeout: float | None = None,
               on_trial_end: Callable[[FrozenTrial], None] | None = None) -> WorkerReport:
    """Run waiting trials until none is waiting or running (or ``timeout`` seconds passed).

    ``objective(trial)`` returns the value(s) to tell; ``optuna.TrialPruned`` prunes the trial;
    any other exception fails it with the error in the trial's user attributes (``error``,
    ``traceback``) and the worker goes on -- except :class:`SweepAbort`, which stops it. On
    KeyboardInterrupt the running trial is failed and queued again before the interrupt goes up.
    """
    report = WorkerReport()
    deadline = None if timeout is None else time.monotonic() + timeout
    study_id = storage.backend.get_study_id_from_name(study.study_name)
    poll = max(1.0, min(storage.heartbeat_cfg.interval, 10))
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            report.stopped = "timeout"
            break
        with storage.queue_lock():
            storage.fail_stale(study)
            taken = _take_waiting(study, storage, study_id)
            if taken is not None:
                # at once, so that a worker killed from here on leaves a trial the check can see
                storage.beat(taken[1])
        if taken is None:
            if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                break
            time.sleep(poll)
            continue
        frozen = _run_trial(study, storage, *taken, objective)
        report.ran.append(frozen.number)
        report.states[frozen.state.name] += 1
        if on_trial_end is not None:
            on_trial_end(frozen)
    return report


def _take_waiting(study: optuna.Study, storage: SweepStorage, study_id: int) -> tuple[optuna.Trial, int] | None:
    backend = storage.backend
    # listed through the study: Optuna's storage cache must know a trial before it takes parameters
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
        try:
            if backend.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(study, trial_id), trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _run_trial(study: optuna.Study, storage: SweepStorage, trial: optuna.Trial, trial_id: int,
               objective: Objective) -> FrozenTrial:
    trial.set_user_attr("host", socket.gethostname())
    if trial.user_attrs.get("error"):  # a retry inherits its failed predecessor's attributes
        trial.set_user_attr("error", None)
    values: float | Sequence[float] | None = None
    state = TrialState.COMPLETE
    started = time.time()
    with storage.heartbeat(trial_id, trial.number):
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except SweepAbort as exc:
            _record_error(trial, exc)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("error", "interrupted (KeyboardInterrupt/SIGTERM); queued again")
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                RetryHeartbeatStaleTrialCallback()(study, frozen)
            raise
        except Exception as exc:
            _record_error(trial, exc)
            state = TrialState.FAIL
    trial.set_user_attr("seconds", round(time.time() - started, 2))
    if state == TrialState.COMPLETE:
        values = _checked_values(trial, values, len(study.directions))
        if values is None:
            state = TrialState.FAIL
    frozen = study.tell(trial, values if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
    if frozen.state != state:
        log.warning("trial %d was marked %s by another worker while it ran (missed heartbeats?); its result is "
                    "discarded and its retry, if any, runs instead", trial.number, frozen.state.name.lower())
    else:
        log.info("trial %d %s%s", trial.number, state.name.lower(),
                 f" with {frozen.values}" if state == TrialState.COMPLETE else "")
    return frozen


def _checked_values(trial: optuna.Trial, values: Any, expected: int) -> list[float] | None:
    listed = list(values) if isinstance(values, (list, tuple)) else [values]
    problem = None
    if len(listed) != expected:
        problem = (f"the objective returned {counted(len(listed), 'value')} for "
                   f"{counted(expected, 'objective')}")
    elif not all(isinstance(v, (int, float)) and math.isfinite(v) for v in listed):
        problem = f"the objective returned {listed}; every value must be a finite number"
    if problem is not None:
        trial.set_user_attr("error", problem)
        log.warning("trial %d failed: %s", trial.number, problem)
        return None
    return [float(v) for v in listed]


def _record_error(trial: optuna.Trial, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}"
    trial.set_user_attr("error", message[:4000])
    trial.set_user_attr("traceback", "".join(traceback.format_exception(exc))[-8000:])
    log.warning("trial %d failed: %s", trial.number, message)

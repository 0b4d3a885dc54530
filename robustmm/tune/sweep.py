"""``robustmm sweep``: set up (or join) a study, run trials, evaluate the best on test, report.

Every worker -- on this machine or any other -- runs the same steps with the same study file
and storage URL: open the study (the first one creates it and queues the trials), run waiting
trials until none is left, then, when the whole sweep has finished, the first worker to claim
it evaluates the best trial(s) on the test split and writes the report.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from robustmm.errors import ConfigError
from robustmm.tune.config import build_pruner, build_sampler
from robustmm.tune.final import evaluate_final, final_trials, test_results
from robustmm.tune.objective import StudyObjective
from robustmm.tune.plan import SweepPlan, claim_folder, release_folder
from robustmm.tune.report import render_report, summary_text, write_snapshot
from robustmm.tune.space import encoded_initial_trials
from robustmm.tune.storage import JOURNAL_PREFIX, SweepStorage, default_storage_url, open_storage, redact
from robustmm.tune.worker import (BUDGET_ATTR, SweepAbort, WorkerReport, open_study, release_lock, run_worker,
                                   try_lock)

log = logging.getLogger("robustmm")


@dataclass
class SweepResult:
    plan: SweepPlan
    study: optuna.Study
    finished: bool
    #: this process ran the test evaluation (or found it done) and wrote the report
    finalized: bool
    worker: WorkerReport | None = None
    report: Path | None = None
    summary: str = ""
    #: exit codes of local worker processes (``workers > 1``)
    worker_exit_codes: list[int] = field(default_factory=list)


def unfinished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))


def taken_trials(storage: SweepStorage, study_name: str) -> int:
    """How many of the study's trials have left the queue (running or finished); 0 for a new study."""
    try:
        study_id = storage.backend.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    states = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(storage.backend.get_all_trials(study_id, deepcopy=False, states=states))


def attach_worker_log(sweep_dir: Path) -> logging.Handler:
    path = Path(sweep_dir) / "logs" / f"worker-{socket.gethostname()}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("robustmm")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def run_sweep(plan: SweepPlan, workers: int = 1, worker_index: int = 0, final: bool = True,
              final_only: bool = False, progress: bool = True, worker_command: Sequence[str] | None = None,
              worker_env: dict[str, str] | None = None, on_trial_end: Callable[[FrozenTrial], None] | None = None,
              on_start: Callable[[int], None] | None = None) -> SweepResult:
    """Run this process's share of the sweep.

    ``on_start(budget)`` is called once the study is open, with the trial budget in force: a study that
    already exists keeps a larger stored budget than ``plan.n_trials``.
    ``workers > 1`` starts that many local worker processes with ``worker_command`` (the same
    sweep command, run with ``--no-final``) and waits for them; ``final=False`` only runs trials;
    ``final_only`` runs none and evaluates the best trial(s) so far.
    """
    claimed = claim_folder(plan)
    handler = attach_worker_log(plan.sweep_dir)
    storage = None
    try:
        try:
            storage = open_storage(plan.storage_url, plan.sweep.heartbeat)
            sampler = build_sampler(plan.sweep, worker_index, taken_trials(storage, plan.study_name))
            study = open_study(storage, plan.study_name, plan.sweep.directions, plan.n_trials, sampler,
                               build_pruner(plan.sweep), encoded_initial_trials(plan.sweep), plan.identity())
        except BaseException as exc:
            # a bad --storage, or a study of another sweep in a storage outside the folder, must not leave a
            # folder that refuses the corrected command (a default storage opened in the folder stays there)
            outside = plan.storage_url != default_storage_url(plan.sweep_dir)
            if claimed and (storage is None or (isinstance(exc, ConfigError) and outside)):
                logging.getLogger("robustmm").removeHandler(handler)
                handler.close()
                release_folder(plan)
            raise
        if on_start is not None:
            on_start(int(study.user_attrs[BUDGET_ATTR]))
        result = SweepResult(plan, study, finished=False, finalized=False)
        if not final_only:
            if workers > 1:
                if worker_command is None:
                    raise ValueError("workers > 1 needs the worker command line")
                result.worker_exit_codes = run_local_workers(worker_command, workers, worker_index, worker_env)
            else:
                objective = StudyObjective(plan.trial_base(), plan.sweep, plan.objectives, plan.sweep_dir, plan.source)
                try:
                    result.worker = run_worker(study, storage, objective, plan.sweep.timeout, on_trial_end)
                except SweepAbort as exc:
                    add_restart_hint(exc, plan, study)
                    raise
                log.info(result.worker.summary())
        write_snapshot(study, plan.sweep_dir)
        result.finished = unfinished(study) == 0
        if final and (result.finished or final_only):
            evaluated = test_results(study)
            pending = [t.number for t in final_trials(study) if t.number not in evaluated]
            lock = f"final-test-{study.user_attrs.get(BUDGET_ATTR)}"
            # one worker evaluates; a rerun of a finished sweep finds the results stored
            final_claimed = bool(pending) and not final_only and try_lock(storage, plan.study_name, lock)
            if not pending or final_only or final_claimed:
                try:
                    evaluate_final(study, plan, progress)
                except BaseException:
                    if final_claimed:  # interrupted or failed: the next run of the command evaluates
                        release_lock(storage, plan.study_name, lock)
                    raise
                result.finalized = True
                write_snapshot(study, plan.sweep_dir)
                result.report = render_report(plan, study, "live storage")
            else:  # drawn now, the report would lack the test results and could replace the claimer's
                log.info("another worker has claimed the test evaluation of trials %s", pending)
        result.summary = summary_text(plan, study)
        return result
    finally:
        logging.getLogger("robustmm").removeHandler(handler)
        handler.close()


def add_restart_hint(exc: SweepAbort, plan: SweepPlan, study: optuna.Study) -> None:
    """A setup mistake found before any trial finished: the fixed command would be refused as another
    study in this folder, so say how to start again (nothing is lost)."""
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        return
    fix, other = f"remove the sweep folder {plan.sweep_dir}", "--out"
    if plan.storage_url != default_storage_url(plan.sweep_dir):  # the study lives outside the folder
        fix += f" and the study ({delete_study_command(plan.study_name, plan.storage_url)})"
        other = "--out and --study-name"
    exc.args = (f"{exc.args[0]}. No trial of this sweep has finished, so nothing is lost: {fix} before running "
                f"the corrected command, or give it another {other}", *exc.args[1:])


def delete_study_command(study_name: str, storage_url: str) -> str:
    """Optuna's command that deletes ``study_name`` from robustmm's storage ``storage_url``."""
    if storage_url.startswith(JOURNAL_PREFIX):  # robustmm's own scheme: optuna wants the path and a class hint
        path = storage_url[len(JOURNAL_PREFIX):]
        return shlex.join(["optuna", "delete-study", "--study-name", study_name, "--storage", path,
                           "--storage-class", "JournalFileBackend"])
    shown = redact(storage_url)
    command = shlex.join(["optuna", "delete-study", "--study-name", study_name, "--storage", shown])
    return command + (" (with the password in place of ***)" if shown != storage_url else "")


def run_local_workers(command: Sequence[str], workers: int, first_index: int,
                      extra_env: dict[str, str] | None = None) -> list[int]:
    """Start ``workers`` processes running ``command --worker-index i`` and wait for them all.

    Each uses 1 CPU thread unless ``training.threads`` or OMP_NUM_THREADS says otherwise (see
    :mod:`robustmm.parallel`: trials in parallel beat threads within a trial). An interrupt
    (Ctrl-C or SIGTERM to this process) is passed on, so each worker queues its running trial
    again before it stops.
    """
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("ROBUSTMM_THREADS", env.get("OMP_NUM_THREADS", "1"))
    env.setdefault("OMP_NUM_THREADS", env["ROBUSTMM_THREADS"])
    env["ROBUSTMM_WORKERS"] = str(workers)
    procs = [subprocess.Popen([*command, "--worker-index", str(first_index + i)], env=env) for i in range(workers)]
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise

"""The shared trial queue: several worker processes on one storage, a worker killed mid-trial,
pruning, failing trials, growing a finished sweep.

Worker processes run the real queue (robustmm.tune.worker) with a cheap objective so that the
tests are about the distribution of trials, not about training; ``test_sweep_study.py`` runs
real training trials through ``robustmm sweep``.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from robustmm.tune.config import HeartbeatConfig, build_pruner, parse_sweep
from robustmm.tune.space import encoded_initial_trials, suggest_config
from robustmm.tune.storage import open_storage
from robustmm.tune.worker import SweepAbort, open_study, run_worker

REPO = Path(__file__).resolve().parents[1]
HEARTBEAT = {"interval": 1, "grace": 3}
PROCESS_TIMEOUT_S = 180

# A worker process: joins the sweep, announces itself, and runs trials whose objective waits
# until both workers are up (so the two really compete for the queue). With mode "kill",
# trial 0 writes its pid to 'victim' and hangs until the test kills its process.
WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from robustmm.tune.config import HeartbeatConfig
    from robustmm.tune.storage import open_storage
    from robustmm.tune.worker import open_study, run_worker

    url, name, n_trials, work, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
    storage = open_storage(url, HeartbeatConfig(interval=1, grace=3))
    study = open_study(storage, name, ["minimize"], n_trials)
    (work / f"ready-{os.getpid()}").touch()

    def objective(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        with open(work / "executions.log", "a") as log:
            log.write(f"{trial.number} {os.getpid()}\\n")
        deadline = time.time() + 120
        while len(list(work.glob("ready-*"))) < 2 and time.time() < deadline:
            time.sleep(0.05)
        if mode == "kill" and trial.number == 0:
            (work / "victim").write_text(str(os.getpid()))
            time.sleep(600)
        time.sleep(0.1)
        return x * x

    report = run_worker(study, storage, objective)
    (work / f"done-{os.getpid()}.json").write_text(json.dumps(report.ran))
""")


def postgres_url() -> str:
    url = os.environ.get("ROBUSTMM_TEST_POSTGRES_URL")
    if not url:
        reason = os.environ.get("ROBUSTMM_TEST_POSTGRES_UNAVAILABLE",
                                "ROBUSTMM_TEST_POSTGRES_URL is not set (source .ci/start_postgres.sh to start a server)")
        pytest.skip(f"PostgreSQL: {reason}")
    return url


def storage_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    if kind == "journal":
        return f"journal:{tmp_path / 'optuna.journal'}"
    return postgres_url()


def start_workers(url: str, name: str, n_trials: int, work: Path, mode: str, count: int = 2) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-c", WORKER, url, name, str(n_trials), str(work), mode], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(count)]


def wait_all(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        try:
            stdout, _ = p.communicate(timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a worker process did not finish")
        out.append((p.returncode, stdout))
    return out


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url, HeartbeatConfig(**HEARTBEAT)).backend)


# each variant starts two Python processes: the default suite runs SQLite (the default storage)
# and PostgreSQL (when .ci/start_postgres.sh started one), the journal variant is slow-marked
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("journal", marks=pytest.mark.slow), "postgresql"])
def test_two_workers_finish_exactly_n_trials(kind: str, tmp_path: Path) -> None:
    url, name, n = storage_url(kind, tmp_path), f"two-workers-{uuid.uuid4().hex[:8]}", 8
    results = wait_all(start_workers(url, name, n, tmp_path, "plain"))
    assert [code for code, _ in results] == [0, 0], [text[-2000:] for _, text in results]

    trials = load(url, name).get_trials()
    assert sorted(t.number for t in trials) == list(range(n))  # no duplicate numbers, none beyond the budget
    assert all(t.state == TrialState.COMPLETE for t in trials)  # none lost, waiting or running
    executions = [line.split() for line in (tmp_path / "executions.log").read_text().splitlines()]
    assert Counter(int(num) for num, _ in executions) == Counter(range(n))  # every trial ran exactly once
    assert len({pid for _, pid in executions}) == 2  # both workers took trials from the one queue


# the journal storage's heartbeat is robustmm's own, SQLite's is Optuna's: the default suite runs the
# journal variant (its processes start faster), the SQLite one is slow-marked
@pytest.mark.parametrize("kind", [pytest.param("sqlite", marks=pytest.mark.slow), "journal"])
def test_killed_worker_trial_is_failed_and_retried(kind: str, tmp_path: Path) -> None:
    url, name, n = storage_url(kind, tmp_path), f"kill-{uuid.uuid4().hex[:8]}", 4
    procs = start_workers(url, name, n, tmp_path, "kill")
    victim_file = tmp_path / "victim"
    deadline = time.time() + PROCESS_TIMEOUT_S
    while not victim_file.is_file() and time.time() < deadline:
        time.sleep(0.05)
    victim = int(victim_file.read_text())
    os.kill(victim, signal.SIGKILL)
    killed_at = dt.datetime.now()
    survivors = [p for p in procs if p.pid != victim]
    [(code, text)] = wait_all(survivors)
    next(p for p in procs if p.pid == victim).wait()
    assert code == 0, text[-3000:]

    trials = {t.number: t for t in load(url, name).get_trials()}
    lost = trials[0]
    assert lost.state == TrialState.FAIL and "lost its worker" in lost.user_attrs["error"]
    # failed by the heartbeat check: not before the grace period ran out, and within the window
    # (grace + one poll of the surviving worker; the bound is loose for loaded CI machines)
    waited = (lost.datetime_complete - killed_at).total_seconds()
    assert -1.0 <= waited <= HEARTBEAT["grace"] + HEARTBEAT["interval"] + 20
    retry = trials[n]
    assert retry.state == TrialState.COMPLETE and retry.system_attrs["failed_trial"] == 0
    assert not retry.user_attrs.get("error")  # the retry does not inherit the lost trial's error
    assert retry.params == lost.params  # the same point is evaluated again
    assert sorted(trials) == list(range(n + 1))
    finished = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert len(finished) == n  # the sweep still completes its N trials
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def in_process_study(tmp_path: Path, sweep_raw: dict, n_trials: int, name: str = "s"):
    sweep = parse_sweep(sweep_raw, "test")
    storage = open_storage(f"journal:{tmp_path / 'optuna.journal'}", HeartbeatConfig(**HEARTBEAT))
    study = open_study(storage, name, sweep.directions, n_trials, optuna.samplers.RandomSampler(seed=0),
                       build_pruner(sweep), encoded_initial_trials(sweep))
    return sweep, storage, study


def test_pruning_stops_trials_in_the_bad_region_early(tmp_path: Path) -> None:
    # learning curves with a known answer: x > 0.8 is a deliberately bad region whose curve stays
    # low; elsewhere every trial learns the same curve (so none of them is below the median)
    region = [0.1, 0.3, 0.2, 0.9, 0.15, 0.95, 0.25, 0.85, 0.05, 0.99]
    sweep, storage, study = in_process_study(tmp_path, {
        "params": {"x": {"kind": "float", "low": 0.0, "high": 1.0}},
        "objectives": [{"metric": "score", "direction": "maximize"}],
        "pruner": {"kind": "median", "options": {"n_startup_trials": 3, "n_warmup_steps": 1}},
        "initial_trials": [{"x": x} for x in region]}, len(region))
    epochs = 20

    def objective(trial: optuna.Trial) -> float:
        x = suggest_config({}, sweep, trial)["x"]
        level = 0.2 if x > 0.8 else 1.0
        for epoch in range(epochs):
            value = level * (1 - 0.7 ** (epoch + 1))
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    run_worker(study, storage, objective)
    trials = study.get_trials()
    bad = [t for t in trials if t.params["x"] > 0.8]
    good = [t for t in trials if t.params["x"] <= 0.8]
    assert len(bad) == 4 and all(t.state == TrialState.PRUNED for t in bad)
    assert all(max(t.intermediate_values) <= 2 for t in bad)  # stopped at epoch 2 of 20 at the latest
    assert all(t.state == TrialState.COMPLETE and len(t.intermediate_values) == epochs for t in good)


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep, storage, study = in_process_study(tmp_path, {
        "params": {"x": {"kind": "categorical", "choices": [1, 2, 3]}},
        "objectives": [{"metric": "m", "direction": "minimize"}],
        "initial_trials": [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 2}]}, 5)

    def objective(trial: optuna.Trial) -> float:
        x = suggest_config({}, sweep, trial)["x"]
        if trial.number == 4:
            return float("nan")
        if x == 2:
            raise RuntimeError("out of memory on x=2")
        return float(x)

    report = run_worker(study, storage, objective)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAIL, 2: TrialState.COMPLETE, 3: TrialState.FAIL,
                      4: TrialState.FAIL}
    failed = study.trials[1]
    assert failed.user_attrs["error"] == "RuntimeError: out of memory on x=2"
    assert "raise RuntimeError" in failed.user_attrs["traceback"]
    assert "finite number" in study.trials[4].user_attrs["error"]
    assert report.states == Counter({"COMPLETE": 2, "FAIL": 3})


def test_an_interrupted_trial_is_queued_again(tmp_path: Path) -> None:
    sweep, storage, study = in_process_study(tmp_path, {
        "params": {"x": {"kind": "float", "low": 0, "high": 1}}, "objectives": [{"metric": "m"}]}, 2)

    def objective(trial: optuna.Trial) -> float:
        suggest_config({}, sweep, trial)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_worker(study, storage, objective)
    first, waiting, retry = study.get_trials()
    assert first.state == TrialState.FAIL and "interrupted" in first.user_attrs["error"]
    assert retry.state == TrialState.WAITING and retry.params == first.params
    assert retry.system_attrs["failed_trial"] == 0 and waiting.state == TrialState.WAITING
    run_worker(study, storage, lambda trial: suggest_config({}, sweep, trial)["x"])  # the same command again
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL] + [TrialState.COMPLETE] * 2


def test_a_sweep_setup_error_stops_the_worker(tmp_path: Path) -> None:
    sweep, storage, study = in_process_study(tmp_path, {
        "params": {"x": {"kind": "float", "low": 0, "high": 1}}, "objectives": [{"metric": "m"}]}, 3)

    def objective(trial: optuna.Trial) -> float:
        raise SweepAbort("objective names a scenario the study does not evaluate")

    with pytest.raises(SweepAbort):
        run_worker(study, storage, objective)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]


def test_joining_with_a_larger_budget_queues_the_difference_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url, HeartbeatConfig(**HEARTBEAT))
    study = open_study(storage, "grow", ["minimize"], 3)
    run_worker(study, storage, lambda t: t.suggest_float("x", 0, 1))
    again = open_study(storage, "grow", ["minimize"], 3)  # a rerun of a finished sweep adds nothing
    assert len(again.get_trials(states=(TrialState.WAITING,))) == 0
    for _ in range(2):  # two workers asking for 5 add two trials, not four
        open_study(open_storage(url, HeartbeatConfig(**HEARTBEAT)), "grow", ["minimize"], 5)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 2
    with pytest.raises(Exception, match="optimizes \\['minimize'\\]"):
        open_study(storage, "grow", ["maximize"], 5)



def test_two_workers_raising_the_budget_at_once_queue_up_to_the_larger_budget(tmp_path: Path, monkeypatch) -> None:
    """Worker A asks for 5 and worker B for 6 on a finished 3-trial study; B reads the budget while
    A is still queueing. In the end 3 slots wait (6 in all), not 2 + 3."""
    import threading

    from robustmm.tune import worker

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url, HeartbeatConfig(**HEARTBEAT))
    study = open_study(storage, "race", ["minimize"], 3)
    run_worker(study, storage, lambda t: t.suggest_float("x", 0, 1))

    real_queue = worker._queue
    other = threading.Thread(target=lambda: open_study(open_storage(url, HeartbeatConfig(**HEARTBEAT)), "race",
                                                       ["minimize"], 6))

    def queue_while_another_worker_joins(*args, **kwargs):
        if not other.is_alive() and other.ident is None:
            other.start()  # B joins while A's budget of 5 is not stored yet
            other.join(timeout=3)
        return real_queue(*args, **kwargs)

    monkeypatch.setattr(worker, "_queue", queue_while_another_worker_joins)
    open_study(storage, "race", ["minimize"], 5)
    other.join(timeout=30)
    assert not other.is_alive()
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3
    assert study.user_attrs[worker.BUDGET_ATTR] == 6


SEEDED_STUDY = """
name: seeded
data: {kind: adni, root: nowhere}
methods: [{name: dropout_baseline}]
sweep:
  n_trials: 2
  params: {training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2, log: true}}
  objectives: [{metric: auc}]
  sampler: {kind: random, seed: 0}
  pruner: {kind: none}
"""


def test_continuing_a_seeded_sweep_draws_new_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every run_sweep call stands for a new `robustmm sweep` process; trials only draw their parameters
    from robustmm.config import load_study
    from robustmm.tune import sweep as sweep_module
    from robustmm.tune.plan import plan_sweep

    interrupt_at: set[int] = set()

    def cheap_objective(base, sweep, objectives, sweep_dir, source):
        def objective(trial: optuna.Trial) -> float:
            lr = suggest_config(base, sweep, trial)["training"]["lr"]
            if trial.number in interrupt_at:
                raise KeyboardInterrupt  # SIGTERM: the trial is queued again
            return lr
        return objective

    monkeypatch.setattr(sweep_module, "StudyObjective", cheap_objective)
    path = tmp_path / "study.yaml"
    path.write_text(SEEDED_STUDY)
    cfg = load_study(path)

    def run(n_trials: int, worker_index: int = 0) -> optuna.Study:
        plan = plan_sweep(cfg, str(path), n_trials=n_trials, out=tmp_path / "sweep")
        return sweep_module.run_sweep(plan, worker_index=worker_index, final=False, progress=False).study

    def drawn(study: optuna.Study) -> list[float]:  # retries repeat their failed trial's point on purpose
        return [t.params["training.lr"] for t in study.get_trials() if "failed_trial" not in t.system_attrs]

    first = drawn(run(2))
    assert len(set(first)) == 2
    # a fresh sweep with the same seed is reproducible
    assert drawn(sweep_module.run_sweep(plan_sweep(cfg, str(path), out=tmp_path / "again"), final=False,
                                        progress=False).study) == first
    continued = drawn(run(4))
    assert continued[:2] == first and len(set(continued)) == 4  # trials 2, 3 are new points
    interrupt_at.add(5)
    with pytest.raises(KeyboardInterrupt):
        run(8)  # trial 4 ran, 5 was interrupted (and queued again), 6 and 7 wait
    interrupt_at.clear()
    resumed = drawn(run(8))
    assert len(resumed) == 8 and len(set(resumed)) == 8  # trials 6, 7 are new points too
    # another machine's worker joining the continued sweep
    assert len(set(drawn(run(10, worker_index=1)))) == 10


@pytest.mark.parametrize("storage", ["default", "journal"])
def test_a_setup_error_before_any_finished_trial_says_how_to_start_again(tmp_path: Path, storage: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # a mistake only a trial can find (here: an unknown pruning metric) leaves a folder that the corrected
    # command would refuse as another study: the error says what to remove
    from robustmm.config import load_study
    from robustmm.tune import sweep as sweep_module
    from robustmm.tune.plan import plan_sweep

    def setup_error(*args):
        def objective(trial: optuna.Trial) -> float:
            raise SweepAbort("sweep.pruner.metric 'los' is not a validation metric")
        return objective

    monkeypatch.setattr(sweep_module, "StudyObjective", setup_error)
    path = tmp_path / "study.yaml"
    path.write_text(SEEDED_STUDY)
    out = tmp_path / "sweep"
    url = None if storage == "default" else f"journal:{tmp_path / 'elsewhere.journal'}"
    plan = plan_sweep(load_study(path), str(path), storage=url, out=out)
    with pytest.raises(SweepAbort) as err:
        sweep_module.run_sweep(plan, final=False, progress=False)
    msg = str(err.value)
    assert msg.startswith("sweep.pruner.metric 'los'") and f"remove the sweep folder {out}" in msg
    assert ("optuna delete-study --study-name seeded" in msg) == (storage == "journal")
    assert msg.endswith("another --out" if storage == "default" else "another --out and --study-name")
    if storage == "journal":  # the command given works as printed: the study is gone afterwards
        command = msg.split("the study (", 1)[1].split(") before", 1)[0]
        subprocess.run(shlex.split(command), check=True, capture_output=True)
        journal = JournalStorage(JournalFileBackend(url[len("journal:"):]))
        assert optuna.get_all_study_names(journal) == []


def test_a_sweep_of_another_study_cannot_join_a_shared_study(tmp_path: Path) -> None:
    # two sweep folders, one storage, one study name: another search space (or another base study) joined
    # silently, its trials were ranked with the first sweep's and the best trial's test run rebuilt from
    # the wrong base study
    from robustmm.config import load_study
    from robustmm.errors import ConfigError
    from robustmm.tune.plan import plan_sweep
    from robustmm.tune.sweep import run_sweep

    url = f"journal:{tmp_path / 'shared.journal'}"

    def run(study: str, out: str) -> optuna.Study:
        path = tmp_path / f"{out}.yaml"
        path.write_text(study)
        plan = plan_sweep(load_study(path), str(path), storage=url, study_name="shared", out=tmp_path / out)
        return run_sweep(plan, final=False, final_only=True, progress=False).study  # joins, runs no trial

    run(SEEDED_STUDY, "first")
    other_space = SEEDED_STUDY.replace("training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2, log: true}",
                                       "model.embed_dim: {kind: categorical, choices: [8, 16]}")
    other_base = SEEDED_STUDY.replace("seed: 0", "seed: 1")
    for study, changed in ((other_space, "sweep.params.model.embed_dim"), (other_base, "sweep.sampler.seed")):
        with pytest.raises(ConfigError) as err:
            run(study, "second")
        msg = str(err.value)
        assert "study 'shared' in journal:" in msg and changed in msg and "another --study-name" in msg
        assert not (tmp_path / "second").exists()  # the corrected command may use the same --out
    # the same study (another budget, another folder: another machine) joins
    assert len(run(SEEDED_STUDY.replace("n_trials: 2", "n_trials: 3"), "third").trials) == 3


def test_an_interrupted_test_evaluation_runs_again_with_the_same_command(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C/SIGTERM during the test evaluation kept its claim: the same command then said that another
    # worker had claimed it and never evaluated the best trial
    from robustmm.config import load_study
    from robustmm.tune import sweep as sweep_module
    from robustmm.tune.plan import plan_sweep

    monkeypatch.setattr(sweep_module, "StudyObjective", lambda base, sweep, *rest: (
        lambda trial: suggest_config(base, sweep, trial)["training"]["lr"]))
    evaluated: list[str] = []

    def evaluate_final(study: optuna.Study, plan, progress: bool) -> list:
        evaluated.append("started")
        if len(evaluated) == 1:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(sweep_module, "evaluate_final", evaluate_final)
    path = tmp_path / "study.yaml"
    path.write_text(SEEDED_STUDY)
    plan = plan_sweep(load_study(path), str(path), out=tmp_path / "sweep")
    with pytest.raises(KeyboardInterrupt):
        sweep_module.run_sweep(plan, progress=False)
    result = sweep_module.run_sweep(plan, progress=False)
    assert evaluated == ["started", "started"] and result.finalized


def test_workers_starting_together_both_join_a_new_sweep_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a worker that looked while another was between writing config.yaml and sweep.json was refused with
    # "exists and is not a sweep folder" (3 of 4 workers started together, most times)
    from robustmm.config import load_study
    from robustmm.errors import RunDirectoryError
    from robustmm.tune import plan as plan_module

    path = tmp_path / "study.yaml"
    path.write_text(SEEDED_STUDY)
    plan = plan_module.plan_sweep(load_study(path), str(path), out=tmp_path / "sweep")
    write_json = plan_module.write_json_atomic
    other: list[bool] = []
    looked: list[bool] = []

    def other_worker_looks_meanwhile(target: Path, doc: dict) -> None:
        if not looked:
            looked.append(True)
            other.append(plan_module.claim_folder(plan))
        write_json(target, doc)

    monkeypatch.setattr(plan_module, "write_json_atomic", other_worker_looks_meanwhile)
    assert sorted([plan_module.claim_folder(plan), *other]) == [False, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml", "sweep"]  # nothing left beside it
    assert plan_module.read_marker(tmp_path / "sweep")["study_name"] == "seeded"

    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirectoryError, match="is a file"):
        plan_module.claim_folder(plan_module.plan_sweep(load_study(path), str(path), out=tmp_path / "file"))


def test_a_worker_that_did_not_claim_the_test_evaluation_leaves_the_report_alone(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # it wrote report.html (and trials.json) without the test results while the claiming worker evaluated,
    # and could replace that worker's final report in a shared folder
    from robustmm.config import load_study
    from robustmm.tune import sweep as sweep_module
    from robustmm.tune.plan import claim_folder, plan_sweep
    from robustmm.tune.worker import try_lock

    monkeypatch.setattr(sweep_module, "StudyObjective", lambda base, sweep, *rest: (
        lambda trial: suggest_config(base, sweep, trial)["training"]["lr"]))
    path = tmp_path / "study.yaml"
    path.write_text(SEEDED_STUDY)
    plan = plan_sweep(load_study(path), str(path), out=tmp_path / "sweep")
    claim_folder(plan)
    storage = open_storage(plan.storage_url, plan.sweep.heartbeat)
    assert try_lock(storage, plan.study_name, "final-test-2")  # another worker is evaluating the best trial
    result = sweep_module.run_sweep(plan, progress=False)
    assert result.finished and not result.finalized and result.report is None
    assert not (tmp_path / "sweep" / "report.html").exists()


def test_sweep_messages_count_one_trial_in_the_singular() -> None:
    from robustmm.tune.worker import WorkerReport

    # a one-trial sweep said "this worker ran 1 trials"
    assert WorkerReport(ran=[0]).summary().startswith("this worker ran 1 trial (none)")
    assert WorkerReport(ran=[0, 1]).summary().startswith("this worker ran 2 trials")

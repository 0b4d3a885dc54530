"""The sweep section: validation with key paths, dotted-path search spaces, conditions, samplers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from robustmm.config import load_study
from robustmm.errors import ConfigError
from robustmm.tune.config import build_pruner, build_sampler, parse_sweep
from robustmm.tune.plan import plan_sweep
from robustmm.tune.space import get_path, set_path, stored_config, suggest_config

REPO = Path(__file__).resolve().parents[1]

STUDY = """
name: s
data: {kind: adni, root: nowhere}
methods:
  - {name: complete_only}
  - {name: dropout_baseline, id: dropout}
"""


def study_with(tmp_path: Path, sweep: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY + sweep)
    return path


def test_misspelt_sweep_key_names_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_sweep({"params": {"training.lr": {"kind": "float", "low": 0.1, "hihg": 1.0}},
                     "objectives": [{"metric": "auc"}]}, "study.yaml")
    msg = str(err.value)
    assert "unknown key 'sweep.params.training.lr.hihg'" in msg
    assert "missing required key 'sweep.params.training.lr.high'" in msg


@pytest.mark.parametrize("sweep, expected", [
    ({"params": {"a": {"low": 0.0, "high": 1.0}}, "objectives": [{"metric": "auc"}]},
     "sweep.params.a needs 'kind: float', 'kind: int' or 'kind: categorical'"),
    ({"params": {"a": {"kind": "float", "low": 0.0, "high": 1.0, "log": True}}, "objectives": [{"metric": "auc"}]},
     "log-scaled range needs low > 0"),
    ({"params": {"a": {"kind": "int", "low": 5, "high": 1}}, "objectives": [{"metric": "auc"}]},
     "low (5) is above high (1)"),
    ({"params": {"a": {"kind": "float", "low": 0.0, "high": 1.0}}, "pruner": {"kind": "median"},
      "objectives": [{"metric": "auc"}, {"metric": "auc", "scenario": "pet_missing:AUILC"}]},
     "pruning needs a single objective"),
    ({"params": {"a": {"kind": "float", "low": 0.0, "high": 1.0}}, "objectives": [{"metric": "auc"}],
      "initial_trials": [{"b": 1}]}, "initial_trials.0 names ['b']"),
    ({"params": {"a": {"kind": "float", "low": 0.0, "high": 1.0}}, "objectives": [{"metric": "auc"}],
      "sampler": {"kind": "tpe", "options": {"n_startup": 3}}}, "TPESampler: TPESampler.__init__() got an unexpected keyword argument 'n_startup'"),
    # each trial failed with "OverflowError: Range exceeds valid bounds"
    ({"params": {"a": {"kind": "float", "low": 0.0, "high": float("inf")}}, "objectives": [{"metric": "auc"}]},
     "'sweep.params.a.high': Input should be a finite number"),
    # an initial trial outside its parameter's space failed as "ValueError: '12' not in (8, 16)." (categorical)
    # or trained silently with a value the search excludes (a learning rate of 5 for a range up to 0.01)
    ({"params": {"a": {"kind": "categorical", "choices": [8, 16]}}, "objectives": [{"metric": "auc"}],
      "initial_trials": [{"a": 8}, {"a": 12}]}, "initial_trials.1.a: 12 is not a value of sweep.params.a (choices [8, 16])"),
    ({"params": {"a": {"kind": "float", "low": 0.001, "high": 0.01}}, "objectives": [{"metric": "auc"}],
      "initial_trials": [{"a": 5.0}]}, "initial_trials.0.a: 5.0 is not a value of sweep.params.a (0.001 to 0.01)"),
    ({"params": {"a": {"kind": "int", "low": 0, "high": 10, "step": 5}}, "objectives": [{"metric": "auc"}],
      "initial_trials": [{"a": 3}]}, "initial_trials.0.a: 3 is not a value of sweep.params.a (0 to 10 in steps of 5)"),
    ({"params": {"a": {"kind": "float", "low": 0.0, "high": 1.0}}, "objectives": [{"metric": "auc"}],
      "initial_trials": [{"a": "high"}]}, "initial_trials.0.a: 'high' is not a value of sweep.params.a (0.0 to 1.0)"),
])
def test_invalid_sweeps_are_refused_with_the_reason(sweep: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sweep(sweep, "study.yaml")
    assert expected in str(err.value)


def test_defaults_follow_the_number_of_objectives() -> None:
    single = parse_sweep({"params": {"a": {"kind": "float", "low": 0, "high": 1}},
                          "objectives": [{"metric": "auc"}, ]}, "s")
    assert (single.sampler_kind, single.pruner_kind, single.directions) == ("tpe", "median", ["maximize"])
    assert isinstance(build_pruner(single), optuna.pruners.MedianPruner)
    multi = parse_sweep({"params": {"a": {"kind": "float", "low": 0, "high": 1}},
                         "objectives": [{"metric": "auc"}, {"metric": "loss", "scenario": "x"}]}, "s")
    assert (multi.sampler_kind, multi.pruner_kind, multi.directions) == ("nsga2", "none", ["maximize", "minimize"])
    seeded = parse_sweep({"params": {"a": {"kind": "float", "low": 0, "high": 1}}, "objectives": [{"metric": "auc"}],
                          "sampler": {"kind": "random", "seed": 7}}, "s")
    # a worker process's seed follows (seed, worker index, trials taken when it started): a fresh sweep
    # repeats itself; workers starting together differ by index, and a continuation by the count
    starts = [(0, 0), (0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (2, 0)]
    draws = [optuna.create_study(sampler=build_sampler(seeded, k, taken)).ask().suggest_float("a", 0, 1)
             for k, taken in starts]
    assert draws[0] == draws[1] and len(set(draws[1:])) == len(starts) - 1


def test_default_direction_follows_the_metric_name() -> None:
    """Per-region segmentation distances and error metrics are minimised, as the report and the
    seed verdicts read them (robustmm.metrics.paired.higher_is_better)."""
    objectives = [{"metric": m, "scenario": f"s{i}"} for i, m in
                  enumerate(["dice_mean", "hd95_wt", "hd95_mean", "rmse", "val_loss", "c_index", "ibs"])]
    sweep = parse_sweep({"params": {"a": {"kind": "float", "low": 0, "high": 1}}, "objectives": objectives}, "s")
    assert sweep.directions == ["maximize", "minimize", "minimize", "minimize", "minimize", "maximize", "minimize"]


def test_paths_address_list_items_by_id_and_create_sections() -> None:
    raw = {"methods": [{"name": "complete_only", "id": None}, {"name": "dropout_baseline", "id": "dropout"}],
           "training": {"lr": 0.1}}
    set_path(raw, "methods.dropout.keep_complete", 0.25)
    set_path(raw, "methods.0.fill", "mean")
    set_path(raw, "methods.complete_only.epochs", 3)
    set_path(raw, "training.early_stopping.patience", 2)
    assert raw["methods"][1]["keep_complete"] == 0.25
    assert raw["methods"][0] == {"name": "complete_only", "id": None, "fill": "mean", "epochs": 3}
    assert raw["training"] == {"lr": 0.1, "early_stopping": {"patience": 2}}
    assert get_path(raw, "methods.dropout.keep_complete") == 0.25
    with pytest.raises(ConfigError, match="'mmanet' is neither an index \\(0-1\\) nor an id"):
        set_path(raw, "methods.mmanet.alpha", 1.0)
    with pytest.raises(ConfigError, match="'training.lr' is a value"):
        set_path(raw, "training.lr.value", 1.0)


def test_conditional_parameter_follows_the_chosen_value() -> None:
    sweep = parse_sweep({
        "params": {
            "methods.dropout.dropout.kind": {"kind": "categorical", "choices": ["random_subsets", "random_modality"]},
            "methods.dropout.dropout.rate": {"kind": "float", "low": 0.1, "high": 0.9,
                                             "when": {"methods.dropout.dropout.kind": "random_modality"}},
            "model.volume.channels": {"kind": "categorical", "choices": [[4, 8], [8, 16]]},
        },
        "objectives": [{"metric": "auc"}]}, "s")
    base = {"methods": [{"name": "dropout_baseline", "id": "dropout", "dropout": {"kind": "random_subsets"}}],
            "model": {"volume": {"channels": [8]}}}
    with_rate = stored_config(base, sweep, {"methods.dropout.dropout.kind": "random_modality",
                                            "methods.dropout.dropout.rate": 0.4, "model.volume.channels": "[8, 16]"})
    assert with_rate["methods"][0]["dropout"] == {"kind": "random_modality", "rate": 0.4}
    assert with_rate["model"]["volume"]["channels"] == [8, 16]  # list choices travel through Optuna as JSON
    without = stored_config(base, sweep, {"methods.dropout.dropout.kind": "random_subsets",
                                          "model.volume.channels": "[4, 8]"})
    assert without["methods"][0]["dropout"] == {"kind": "random_subsets"}
    assert base["methods"][0]["dropout"] == {"kind": "random_subsets"}  # the base is never modified

    # define-by-run: the condition decides whether Optuna even sees the parameter
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        raw = suggest_config(base, sweep, trial)
        kind = raw["methods"][0]["dropout"]["kind"]
        assert ("methods.dropout.dropout.rate" in trial.params) == (kind == "random_modality")
        seen.add(kind)
        study.tell(trial, 0.0)
    assert seen == {"random_subsets", "random_modality"}


def test_plan_checks_every_bound_against_the_study_schema(tmp_path: Path) -> None:
    ok = study_with(tmp_path, """
sweep:
  params:
    training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2, log: true}
    methods.dropout.keep_complete: {kind: float, low: 0.0, high: 0.5}
  objectives: [{metric: auc, method: dropout}]
""")
    plan = plan_sweep(load_study(ok), str(ok))
    assert plan.study_name == "s" and plan.sweep_dir == Path("runs/s/sweeps/s")
    assert plan.storage_url == f"sqlite:///{Path('runs/s/sweeps/s/optuna.db').resolve()}"
    assert plan.trial_base()["sweep"] is None and plan.trial_base()["evaluation"]["bootstrap"] == 0

    typo = study_with(tmp_path, """
sweep:
  params: {training.lrr: {kind: float, low: 1.0e-4, high: 1.0e-2}}
  objectives: [{metric: auc, method: dropout}]
""")
    msg = str(pytest.raises(ConfigError, plan_sweep, load_study(typo), str(typo)).value)
    assert "sweep.params.training.lrr" in msg and "did you mean 'lr'" in msg

    out_of_range = study_with(tmp_path, """
sweep:
  params: {methods.dropout.keep_complete: {kind: float, low: 0.5, high: 1.5}}
  objectives: [{metric: auc, method: dropout}]
""")
    msg = str(pytest.raises(ConfigError, plan_sweep, load_study(out_of_range), str(out_of_range)).value)
    assert "keep_complete = 1.5" in msg and "methods.1.keep_complete" in msg

    ambiguous = study_with(tmp_path, """
sweep:
  params: {training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2}}
  objectives: [{metric: auc}]
""")
    msg = str(pytest.raises(ConfigError, plan_sweep, load_study(ambiguous), str(ambiguous)).value)
    assert "name the one to tune with 'method:'" in msg


def test_worked_example_study_is_valid() -> None:
    path = REPO / "studies" / "adni_mci_sweep.yaml"
    plan = plan_sweep(load_study(path), str(path))
    assert plan.objectives[0].method == "dropout_baseline" and plan.sweep.pruner_kind == "median"
    pareto = plan_sweep(load_study(path, profile="pareto"), str(path))
    assert pareto.sweep.directions == ["maximize", "maximize"] and pareto.sweep.sampler_kind == "nsga2"


@pytest.mark.parametrize("timeout", ["-5", "0", "nan", "soon"])
def test_a_sweep_timeout_that_is_not_a_positive_number_is_refused(timeout: str, tmp_path: Path, capsys) -> None:
    # --timeout -5 stopped every worker before its first trial; nan never stopped one (sweep.timeout is > 0)
    from pydantic import ValidationError

    from robustmm.cli import main

    path = REPO / "studies" / "adni_mci_sweep.yaml"
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(path), f"--timeout={timeout}", "--out", str(tmp_path / "sweep")])
    assert exit_.value.code == 2 and "argument --timeout: " in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
    with pytest.raises(ValidationError, match="timeout"):  # the Python API checks it as the study file's
        plan_sweep(load_study(path), str(path), timeout=float(timeout) if timeout != "soon" else timeout,
                   out=tmp_path / "sweep")
    assert plan_sweep(load_study(path), str(path), timeout=60.0, n_trials=3, out=tmp_path / "s").sweep.timeout == 60


def test_report_falls_back_to_the_trials_snapshot(tmp_path: Path) -> None:
    from robustmm.tune.report import load_study_for_report, write_snapshot

    study = optuna.create_study(study_name="snap", directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    study.add_trial(optuna.trial.create_trial(params={"x": 0.25}, distributions=dist, values=[0.8, 0.1],
                                              user_attrs={"run_dir": "/elsewhere/trial-0000"}))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=dist, state=TrialState.FAIL,
                                              user_attrs={"error": "RuntimeError: boom"}))
    study.set_user_attr("robustmm:test:0", {"test": {"auc": 0.7}})
    (tmp_path / "sweep.json").write_text(json.dumps({"kind": "robustmm-sweep", "study_name": "snap",
                                                     "storage": f"sqlite:///{tmp_path / 'gone.db'}"}))
    write_snapshot(study, tmp_path)
    loaded, source = load_study_for_report(tmp_path)
    assert source.startswith("snapshot trials.json") and "does not exist here" in source
    assert [(t.number, t.state, t.values, t.params) for t in loaded.trials] == \
        [(0, TrialState.COMPLETE, [0.8, 0.1], {"x": 0.25}), (1, TrialState.FAIL, None, {"x": 0.5})]
    assert loaded.trials[1].user_attrs["error"] == "RuntimeError: boom"
    assert loaded.user_attrs["robustmm:test:0"] == {"test": {"auc": 0.7}}
    assert [t.number for t in loaded.best_trials] == [0]


SURVIVAL_STUDY = """
name: surv
data: {kind: tcga_porpoise, root: nowhere, options: {cohort: syn, survival_head: HEAD}}
methods: [{name: dropout_baseline}]
evaluation: {scenarios: [{kind: natural}]}
sweep:
  params: {training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2, log: true}}
  objectives: [{metric: METRIC}]
"""


@pytest.mark.parametrize("head, metric, hint", [("discrete", "auc", "did you mean 'td_auc'?"),
                                                ("discrete", "cindex", "did you mean 'c_index'?"),
                                                ("cox", "ibs", "metrics: ['c_index', 'td_auc']")])
def test_an_objective_metric_the_task_does_not_report_fails_before_any_trial(tmp_path: Path, head: str, metric: str,
                                                                             hint: str) -> None:
    # a survival study reports C-index, td-AUC and (with survival curves, not with a Cox head) IBS
    path = tmp_path / "surv.yaml"
    path.write_text(SURVIVAL_STUDY.replace("HEAD", head).replace("METRIC", metric))
    msg = str(pytest.raises(ConfigError, plan_sweep, load_study(path), str(path)).value)
    assert f"sweep.objectives.0.metric: '{metric}' is not a metric of this study (data.kind tcga_porpoise)" in msg
    assert hint in msg
    path.write_text(SURVIVAL_STUDY.replace("HEAD", head).replace("METRIC", "c_index"))
    assert plan_sweep(load_study(path), str(path)).objectives[0].metric == "c_index"


def test_declared_metric_names_cover_what_each_task_reports() -> None:
    # the up-front objective check trusts metric_names(): every metric a task computes must be listed
    from robustmm.data.base import TaskSpec
    from robustmm.data.mmsa import sentiment_task
    from robustmm.methods.task import task_adapter

    rng = np.random.default_rng(0)
    n = 40
    score = rng.random(n)
    sentiment = rng.uniform(-3, 3, n).round(1)
    time, event = rng.exponential(10, n), (rng.random(n) < 0.7).astype(float)
    cases = [
        (TaskSpec("binary"), {"score": score}, (score > 0.5).astype(int), {"time": time, "event": event}),
        (TaskSpec("multiclass", 3), {"probs": rng.dirichlet(np.ones(3), n)}, rng.integers(0, 3, n), {}),
        (TaskSpec("regression", 1), {"pred": score}, rng.random(n), {}),
        (sentiment_task("regression"), {"pred": sentiment[::-1].copy()}, sentiment, {"regression_label": sentiment}),
        *[(sentiment_task(t), {"logits": rng.normal(size=(n, k))}, rng.integers(0, k, n),
           {"regression_label": sentiment}) for t, k in (("class3", 3), ("class7", 7))],
    ]
    for head in (4, 1):
        survival = task_adapter(TaskSpec("survival", head))
        survival.set_training_data(time, event)
        outputs = {"risk": score} if head == 1 else {"risk": score, "survival": np.sort(rng.random((n, head)))[:, ::-1]}
        reported = survival.metrics(outputs, {"time": time, "event": event}, {})
        assert set(reported) == set(survival.metric_names())
    for spec, outputs, target, meta in cases:
        adapter = task_adapter(spec)
        assert set(adapter.metrics(outputs, target, meta)) <= set(adapter.metric_names()), spec


def test_a_masked_storage_password_is_asked_for_through_the_environment(tmp_path: Path) -> None:
    """`robustmm report` has no --storage option: the message must name what it reads."""
    from robustmm.errors import RunDirectoryError
    from robustmm.tune.report import load_study_for_report

    (tmp_path / "sweep.json").write_text(json.dumps({"kind": "robustmm-sweep", "study_name": "pg",
                                                     "storage": "postgresql://robustmm:***@dbhost/sweeps"}))
    with pytest.raises(RunDirectoryError, match="set ROBUSTMM_SWEEP_STORAGE to the full URL"):
        load_study_for_report(tmp_path)


@pytest.mark.parametrize("name", ["what?", "100%", "odd%41"])
def test_the_default_sqlite_storage_stays_in_a_sweep_folder_whose_path_has_url_characters(tmp_path: Path,
                                                                                           name: str) -> None:
    # SQLAlchemy read 'what?/optuna.db' as the file 'what' (beside the folder, shared by 'what?1' and 'what?2')
    # and 'odd%41' as 'oddA'; the report then looked for the file under the undecoded name
    from robustmm.tune.config import HeartbeatConfig
    from robustmm.tune.report import load_study_for_report
    from robustmm.tune.storage import default_storage_url, open_storage

    folder = tmp_path / name
    folder.mkdir()
    url = default_storage_url(folder)
    optuna.create_study(study_name="s", storage=open_storage(url, HeartbeatConfig()).backend)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert (folder / "optuna.db").is_file()
    (folder / "sweep.json").write_text(json.dumps({"kind": "robustmm-sweep", "study_name": "s", "storage": url}))
    assert load_study_for_report(folder)[1] == "live storage"


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:p@ss@dbhost/sweeps", "postgresql://u:***@dbhost/sweeps"),  # SQLAlchemy showed '***@ss@dbhost'
    ("postgresql://u:p%40ss@dbhost/sweeps", "postgresql://u:***@dbhost/sweeps"),
    ("mysql+pymysql://u@h:3306/d?charset=utf8&password=pw", "mysql+pymysql://u@h:3306/d?charset=utf8&password=***"),
    ("postgresql://dbhost/sweeps", "postgresql://dbhost/sweeps"),
    ("sqlite:////data/me@lab/optuna.db", "sqlite:////data/me@lab/optuna.db"),
])
def test_redact_hides_every_part_of_a_password(url: str, shown: str) -> None:
    from robustmm.tune.storage import redact

    assert redact(url) == shown


def test_a_boolean_is_refused_where_a_sweep_wants_a_number() -> None:
    # pydantic read yes/no (YAML 1.1 booleans) as 1/0: one trial, or a search from 0 epochs
    params = {"a": {"kind": "int", "low": 1, "high": 5}}
    for sweep, key in (({"params": params, "n_trials": True}, "sweep.n_trials"),
                       ({"params": {"a": {**params["a"], "low": False}}}, "sweep.params.a.low")):
        msg = str(pytest.raises(ConfigError, parse_sweep, {**sweep, "objectives": [{"metric": "auc"}]},
                                "study.yaml").value)
        assert f"'{key}': a boolean where a number is wanted" in msg


def test_the_sweep_summary_shows_a_list_choice_as_the_list_written() -> None:
    # Optuna stores a list choice as JSON text; the summary printed by 'robustmm sweep' (and the report's
    # tables) showed it as that text, "model.volume.channels": "[4, 8]", a string the study never wrote
    from types import SimpleNamespace

    from robustmm.tune.report import summary_text

    sweep = parse_sweep({"params": {"model.volume.channels": {"kind": "categorical", "choices": [[4, 8], [8, 16]]},
                                    "model.embed_dim": {"kind": "categorical", "choices": [8, 16]},
                                    "training.lr": {"kind": "float", "low": 1e-4, "high": 1e-2}},
                         "objectives": [{"metric": "auc"}]}, "s")
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"model.volume.channels": "[4, 8]", "model.embed_dim": 16, "training.lr": 0.001},
        distributions={"model.volume.channels": optuna.distributions.CategoricalDistribution(["[4, 8]", "[8, 16]"]),
                       "model.embed_dim": optuna.distributions.CategoricalDistribution([8, 16]),
                       "training.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)},
        value=0.7))
    text = summary_text(SimpleNamespace(study_name="s", labels=["auc"], sweep=sweep), study)
    assert 'parameters {"model.volume.channels": [4, 8], "model.embed_dim": 16, "training.lr": 0.001}' in text

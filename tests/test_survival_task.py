"""The survival task adapter, the table/TCGA data builders, training-set missingness and the
survival study path (tables as multimodal data; discrete-time and Cox heads)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from robustmm.config.schema import GenericDataConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch, collate
from robustmm.data.registry import build_dataset
from robustmm.data.tables import TableDataset, parse_train_missing, training_missingness
from robustmm.errors import ConfigError, DataError
from robustmm.losses import cox_ph_loss, discrete_survival_nll
from robustmm.methods.task import task_adapter
from robustmm.methods.task_survival import SurvivalTask, survival_at_times

# ----------------------------------------------------------------------------- the loss (spec formula)


def _spec_nll(logits: np.ndarray, y: np.ndarray, c: np.ndarray) -> float:
    """specs/dispro.md, bins numbered 1..K: L = −(1−c)[log S_{y−1} + log h_y] − c·log S_y, S_0 = 1."""
    losses = []
    for row, bin0, cens in zip(logits, y, c):
        hazards = {k + 1: 1.0 / (1.0 + math.exp(-row[k])) for k in range(len(row))}
        surv = {0: 1.0}
        for k in range(1, len(row) + 1):
            surv[k] = surv[k - 1] * (1.0 - hazards[k])
        yy = int(bin0) + 1
        losses.append(-(1 - cens) * (math.log(surv[yy - 1]) + math.log(hazards[yy])) - cens * math.log(surv[yy]))
    return float(np.mean(losses))


@pytest.mark.parametrize("censoring", ["none", "some", "all"])
def test_discrete_survival_nll_matches_the_spec_formula(censoring: str) -> None:
    rng = np.random.default_rng(42)
    for _ in range(5):
        logits = rng.normal(scale=1.5, size=(16, 4))
        y = rng.integers(0, 4, size=16)
        c = {"none": np.zeros(16), "some": (rng.random(16) < 0.4).astype(float), "all": np.ones(16)}[censoring]
        got = discrete_survival_nll(torch.tensor(logits), torch.tensor(y), torch.tensor(c), alpha=0.0)
        assert got.item() == pytest.approx(_spec_nll(logits, y, c), abs=1e-6)


# ----------------------------------------------------------------------------- the task adapter


def _fitted_task(n_bins: int = 4) -> tuple[SurvivalTask, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    time = rng.exponential(20.0, size=200)
    event = (rng.random(200) < 0.6).astype(float)
    task = task_adapter(TaskSpec("survival", n_bins))
    assert isinstance(task, SurvivalTask) and task.primary_metric == "c_index"
    task.set_training_data(time, event)
    return task, time, event


def test_bins_are_quartiles_of_uncensored_training_times() -> None:
    task, time, event = _fitted_task()
    q = np.quantile(time[event == 1], [0.25, 0.5, 0.75])
    assert task.cuts[1:-1].tolist() == pytest.approx(q.tolist())
    probe = torch.tensor([0.0, q[0] - 1e-3, q[0], q[1] + 1e-3, q[2], 1e6], dtype=torch.float64)
    assert task.bins(probe).tolist() == [0, 0, 1, 2, 3, 3]
    eval_times = np.quantile(time[event == 1], np.linspace(0.1, 0.9, 9))
    assert task.eval_times.tolist() == pytest.approx(eval_times.tolist())


def test_discrete_loss_outputs_and_validation_loss() -> None:
    task, _, _ = _fitted_task()
    logits = torch.randn(6, 4)
    time = torch.tensor([1.0, 5.0, 12.0, 20.0, 40.0, 90.0])
    event = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    batch = Batch(inputs={}, present={}, target={"time": time, "event": event})
    expected = discrete_survival_nll(logits, task.bins(time), 1 - event)
    assert task.loss(logits, batch).item() == pytest.approx(expected.item())
    out = task.outputs(logits)
    surv = torch.cumprod(1 - torch.sigmoid(logits), dim=1)
    assert torch.allclose(out["survival"], surv) and torch.allclose(out["risk"], -surv.sum(1))
    numpy_out = {k: v.numpy() for k, v in out.items()}
    assert task.validation_loss(numpy_out, {"time": time.numpy(), "event": event.numpy()}) == pytest.approx(
        expected.item(), rel=1e-6)


def test_cox_head() -> None:
    task = task_adapter(TaskSpec("survival", 1))
    task.set_training_data(np.array([3.0, 5.0, 8.0, 9.0]), np.array([1.0, 0.0, 1.0, 1.0]))
    assert task.cuts is None
    logits = torch.tensor([[0.3], [-0.2], [1.0], [0.1]])
    time, event = torch.tensor([2.0, 4.0, 6.0, 8.0]), torch.tensor([1.0, 1.0, 0.0, 1.0])
    batch = Batch(inputs={}, present={}, target={"time": time, "event": event})
    assert task.loss(logits, batch).item() == pytest.approx(cox_ph_loss(logits[:, 0], time, event).item())
    out = task.outputs(logits)
    assert set(out) == {"logits", "risk"} and torch.equal(out["risk"], logits[:, 0])
    metrics = task.metrics({"risk": np.array([4.0, 3.0, 2.0, 1.0])}, {"time": time.numpy(), "event": event.numpy()}, {})
    assert metrics["c_index"] == 1.0 and "ibs" not in metrics


def test_metrics_known_answers() -> None:
    task, _, _ = _fitted_task()
    rng = np.random.default_rng(1)
    risk = rng.normal(size=120)
    time = rng.exponential(20.0 * np.exp(-risk))
    event = (rng.random(120) < 0.7).astype(float)
    target = {"time": time, "event": event}
    # a perfectly ordered risk (every death earlier than every later time) has C = 1, reversed 0
    exact = {"risk": -time}
    assert task.metrics(exact, target, {})["c_index"] == 1.0
    assert task.metrics({"risk": time}, target, {})["c_index"] == 0.0
    # survival curves: the true-risk model must beat a constant curve on IBS and td-AUC
    lam = np.log(2) / 20.0
    ends = np.concatenate([task.cuts[1:-1], [task.train_time.max()]])
    true_curve = np.exp(-np.outer(lam * np.exp(risk), ends))
    constant = np.tile(true_curve.mean(axis=0), (120, 1))
    good = task.metrics({"risk": risk, "survival": true_curve}, target, {})
    flat = task.metrics({"risk": np.zeros(120), "survival": constant}, target, {})
    assert good["ibs"] < flat["ibs"] and good["td_auc"] > 0.65 and flat["td_auc"] == pytest.approx(0.5)
    idx = np.arange(0, 120, 2)
    assert task.metrics(exact, target, {}, idx)["c_index"] == 1.0


@pytest.mark.parametrize("bins", [4, 1])
def test_both_heads_learn_a_planted_risk(bins: int) -> None:
    """A linear model trained with the task's loss recovers a planted risk (held-out C-index)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 3))
    risk = 1.5 * x[:, 0] - 1.0 * x[:, 1]
    event_time = rng.exponential(20.0 * np.exp(-risk))
    censor = rng.uniform(5.0, 80.0, size=600)
    time, event = np.minimum(event_time, censor), (event_time <= censor).astype(float)
    task = task_adapter(TaskSpec("survival", bins))
    task.set_training_data(time[:400], event[:400])
    torch.manual_seed(0)
    model = torch.nn.Linear(3, bins)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, tt, et = (torch.tensor(a, dtype=torch.float32) for a in (x, time, event))
    for _ in range(150):
        loss = task.survival_loss(model(xt[:400]), tt[:400], et[:400])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = {k: v.numpy() for k, v in task.outputs(model(xt[400:])).items()}
    metrics = task.metrics(out, {"time": time[400:], "event": event[400:]}, {})
    assert metrics["c_index"] > 0.75
    if bins > 1:
        assert metrics["ibs"] < 0.2


def test_survival_at_times_interpolates_between_bin_edges() -> None:
    cuts = np.array([-np.inf, 10.0, 20.0, 30.0, np.inf])
    curve = np.array([[0.9, 0.6, 0.3, 0.1]])
    got = survival_at_times(curve, cuts, 50.0, np.array([0.0, 5.0, 10.0, 15.0, 30.0, 40.0, 60.0]))
    assert got[0].tolist() == pytest.approx([1.0, 0.95, 0.9, 0.75, 0.3, 0.2, 0.1])


def test_state_roundtrip_and_unfitted_errors() -> None:
    task, _, _ = _fitted_task()
    copy = task_adapter(TaskSpec("survival", 4))
    with pytest.raises(RuntimeError, match="fit"):
        copy.bins(torch.tensor([1.0]))
    copy.load_state_dict(task.state_dict())
    assert np.array_equal(copy.cuts, task.cuts) and np.array_equal(copy.eval_times, task.eval_times)
    assert np.array_equal(copy.train_time, task.train_time)


def test_km_report_section(tmp_path: Path) -> None:
    task, _, _ = _fitted_task()
    rng = np.random.default_rng(3)
    risk = rng.normal(size=80)
    time = rng.exponential(20.0 * np.exp(-2 * risk))
    preds = SimpleNamespace(evaluable=np.ones(80, bool), outputs={"risk": risk},
                            target={"time": time, "event": np.ones(80)})
    sections = task.report_sections({"my method": preds}, tmp_path / "plots")
    assert len(sections) == 1
    title, body = sections[0]
    assert "Kaplan" in title and "plots/km_my_method.png" in body
    assert (tmp_path / "plots" / "km_my_method.png").stat().st_size > 1000
    p_value = float(body.split("</td><td>")[3].split("<")[0])
    assert p_value < 1e-3  # the risk really separates the groups


# ----------------------------------------------------------------------------- training-set missingness


def test_training_missingness_fractions_disjoint_and_nested() -> None:
    subjects = [f"P{i:03d}" for i in range(200)]
    presence = {m: np.ones(200, bool) for m in ("clinical", "rnaseq", "cnv", "mut")}
    train = np.arange(0, 160)
    groups = parse_train_missing({"rnaseq": 0.2, "cnv+mut": 0.4}, list(presence), "test")
    present, counts = training_missingness(subjects, presence, train, groups, seed=1)
    assert counts == {"rnaseq": 32, "cnv+mut": 64}
    no_rna, no_dna = ~present["rnaseq"], ~present["cnv"]
    assert no_rna.sum() == 32 and no_dna.sum() == 64 and np.array_equal(no_dna, ~present["mut"])
    assert not (no_rna & no_dna).any() and present["clinical"].all()
    assert not no_rna[160:].any() and not no_dna[160:].any()  # validation/test untouched
    more, _ = training_missingness(subjects, presence, train, parse_train_missing({"rnaseq": 0.4}, list(presence), "t"), 1)
    assert (~more["rnaseq"] | present["rnaseq"]).all()  # the 20 % set is inside the 40 % set
    again, _ = training_missingness(subjects, presence, train, groups, seed=1)
    assert all(np.array_equal(again[m], present[m]) for m in present)


def test_training_missingness_keeps_someone_present() -> None:
    presence = {"a": np.array([True, True, True, False]), "b": np.array([False, True, True, True])}
    groups = parse_train_missing({"a": 1.0}, ["a", "b"], "t")
    present, counts = training_missingness(["s0", "s1", "s2", "s3"], presence, np.arange(4), groups)
    assert counts == {"a": 2} and present["a"].tolist() == [True, False, False, False]


@pytest.mark.parametrize("spec, message", [
    ({"dna": 0.2}, "unknown modality"),
    ({"a": 0.7, "b": 0.5}, "sum"),
    ({"a": 0.2, "a+b": 0.1}, "overlap"),
    ({"a+b+c": 0.1}, "every modality"),
    ({"a": 1.5}, r"\[0, 1\]"),
])
def test_train_missing_errors(spec: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_train_missing(spec, ["a", "b", "c"], "study")


# ----------------------------------------------------------------------------- data builders and studies


def _table(n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = np.round(rng.exponential(30.0 * np.exp(-risk)), 2) + 0.1
    censor = rng.uniform(5, 120, size=n)
    frame = pd.DataFrame({"pid": [f"P{i:03d}" for i in range(n)], "months": np.minimum(time, censor),
                          "dead": (time <= censor).astype(int), "label": np.where(risk > 0, "high", "low"),
                          "age": 60 + 5 * risk + rng.normal(size=n)})
    for j in range(6):
        frame[f"G{j}_expr"] = (risk if j < 2 else 0) + rng.normal(size=n)
    for j in range(4):
        frame[f"G{j}_cn"] = rng.normal(size=n)
    frame.loc[:9, [f"G{j}_cn" for j in range(4)]] = np.nan  # ten patients without copy numbers
    return frame


def _table_cfg(root: Path, **options) -> GenericDataConfig:
    base = {"id_column": "pid", "modalities": {"clinical": {"columns": ["age"]}, "expr": {"suffix": "_expr"},
                                               "cn": {"suffix": "_cn"}},
            "target": {"kind": "survival", "time": "months", "event": "dead"}}
    return GenericDataConfig(kind="table", root=root, options={**base, **options})


def test_table_builder_survival_and_classification(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "cohort.csv", index=False)
    ds = build_dataset(_table_cfg(tmp_path / "cohort.csv", train_missing={"expr": 0.5}, clip=3.0))
    assert isinstance(ds, TableDataset) and ds.task == TaskSpec("survival", 4)
    assert ds.natural_presence()["cn"].sum() == 80
    ds.fit(np.arange(60))
    assert ds.train_missing_counts == {"expr": 30} and ds.natural_presence()["expr"][60:].all()
    assert all(np.abs(ds[i]["inputs"]["expr"].numpy()).max() <= 3.0 for i in range(len(ds)))
    by_folder = build_dataset(_table_cfg(tmp_path, file="cohort.csv", survival_head="cox"))
    assert by_folder.task.num_classes == 1
    cls = build_dataset(GenericDataConfig(kind="table", root=tmp_path / "cohort.csv", options={
        "id_column": "pid", "modalities": {"clinical": {"columns": ["age"]}, "expr": {"regex": "_expr$"}},
        "target": {"kind": "binary", "column": "label", "classes": ["low", "high"]}}))
    assert cls.task.kind == "binary" and cls.class_names == ("low", "high")


def test_table_builder_errors(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "cohort.csv", index=False)
    with pytest.raises(ConfigError, match="data.options.modalitys"):
        build_dataset(GenericDataConfig(kind="table", root=tmp_path / "cohort.csv",
                                        options={"id_column": "pid", "modalitys": {}, "target": {"kind": "binary"}}))
    with pytest.raises(DataError, match="data.options.file"):
        build_dataset(_table_cfg(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(_table_cfg(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="synthetic"):
        build_dataset(GenericDataConfig(kind="table", root=tmp_path, options={}, synthetic={"patients": 10}))


def test_porpoise_builder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="robustmm data prepare tcga"):
        build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "missing", options={"cohort": "blca"}))
    cfg = GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn", synthetic={"patients": 40, "seed": 2},
                            options={"modalities": ["clinical", "rnaseq"], "clip": 4})
    ds = build_dataset(cfg)
    assert ds.synthetic and list(ds.modalities) == ["clinical", "rnaseq"] and len(ds) == 40
    with pytest.raises(ConfigError, match="data.synthetic.patient"):
        build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "other", synthetic={"patient": 40}))


def _study(tmp_path: Path, data: dict, methods: list[dict], scenarios: list[dict]):
    from robustmm.config.loader import validate
    from robustmm.config.schema import StudyConfig

    return validate(StudyConfig, {
        "name": "t", "output_dir": str(tmp_path / "runs"), "data": data, "split": {"folds": 4, "fold": 1},
        "model": {"embed_dim": 8, "trunk_hidden": 8, "table": {"hidden": [8]}},
        "training": {"epochs": 2, "batch_size": 32, "device": "cpu", "early_stopping": {"min_epochs": 1}},
        "methods": methods, "evaluation": {"bootstrap": 20, "scenarios": scenarios}}, source="test")


def test_survival_study_on_a_table_end_to_end(tmp_path: Path) -> None:
    from robustmm.study import run_study

    _table().to_csv(tmp_path / "cohort.csv", index=False)
    data = {"kind": "table", "root": str(tmp_path / "cohort.csv"),
            "options": {"id_column": "pid", "target": {"kind": "survival", "time": "months", "event": "dead"},
                        "modalities": {"clinical": {"columns": ["age"]}, "expr": {"suffix": "_expr"}},
                        "train_missing": {"expr": 0.3}}}
    cfg = _study(tmp_path, data, [{"name": "dropout_baseline"}],
                 [{"kind": "subset", "name": "complete", "modalities": ["clinical", "expr"]},
                  {"kind": "subset", "name": "clinical_only", "modalities": ["clinical"]}])
    result = run_study(cfg, progress=False)
    metrics = {(r["scenario"], r["metric"]) for r in result.records}
    assert {("complete", "c_index"), ("complete", "ibs"), ("complete", "td_auc"), ("clinical_only", "c_index")} <= metrics
    assert (result.run_dir / "plots" / "km_dropout_baseline.png").is_file()
    assert "log-rank" in (result.run_dir / "report.html").read_text()
    assert result.data.dataset.train_missing_counts == {"expr": round(0.3 * len(result.data.splits.train))}


def test_classification_study_on_a_table(tmp_path: Path) -> None:
    from robustmm.study import run_study

    _table().to_csv(tmp_path / "cohort.csv", index=False)
    data = {"kind": "table", "root": str(tmp_path / "cohort.csv"),
            "options": {"id_column": "pid", "target": {"kind": "binary", "column": "label", "classes": ["low", "high"]},
                        "modalities": {"clinical": {"columns": ["age"]}, "expr": {"suffix": "_expr"},
                                       "cn": {"suffix": "_cn"}}}}
    cfg = _study(tmp_path, data, [{"name": "complete_only"}], [{"kind": "natural"}])
    result = run_study(cfg, progress=False)
    assert {r["metric"] for r in result.records} >= {"auc"}
    assert result.data.dataset.natural_presence()["cn"].sum() == 80  # all-NaN groups are missing


def test_prediction_ignores_the_label_and_censorship_baseline(tmp_path: Path) -> None:
    """A test patient's time and censorship can change without changing its prediction."""
    from robustmm.study import run_study

    _table().to_csv(tmp_path / "cohort.csv", index=False)
    data = {"kind": "table", "root": str(tmp_path / "cohort.csv"),
            "options": {"id_column": "pid", "target": {"kind": "survival", "time": "months", "event": "dead"},
                        "modalities": {"clinical": {"columns": ["age"]}, "expr": {"suffix": "_expr"}}}}
    cfg = _study(tmp_path, data, [{"name": "dropout_baseline"}],
                 [{"kind": "subset", "name": "complete", "modalities": ["clinical", "expr"]}])
    result = run_study(cfg, progress=False)
    method, ds = result.methods["dropout_baseline"], result.data.dataset
    test = result.data.indices("test")
    original = collate([ds[int(i)] for i in test])
    before = method.predict(original)["risk"]
    i = int(test[0])
    ds._time[i], ds._event[i] = ds._time[i] * 7 + 50.0, 1.0 - ds._event[i]
    changed = collate([ds[int(j)] for j in test])
    assert changed.target["time"][0] != original.target["time"][0]
    assert changed.target["event"][0] != original.target["event"][0]
    assert torch.equal(before, method.predict(changed)["risk"])
    # and without any target at all
    changed.target = None
    assert torch.equal(before, method.predict(changed)["risk"])


def test_cli_prepare_tcga_and_synth_porpoise(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robustmm.cli import main

    assert main(["data", "synth", "porpoise", "--out", str(tmp_path / "dl"), "--patients", "30", "--cohort", "syn"]) == 0
    file = tmp_path / "dl" / "tcga_syn_all_clean.csv.zip"
    # a sentence like the other data synth commands, naming the file written
    assert capsys.readouterr().out == (f"wrote a synthetic PORPOISE-layout table of 30 patients (cohort syn) to "
                                       f"{file}; use it with data.kind: tcga_porpoise, data.root: {tmp_path / 'dl'}, "
                                       "data.options.cohort: syn\n")
    args = ["data", "prepare", "tcga", "--cohort", "syn", "--from", str(file), "--datasets", str(tmp_path / "ds")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "30 patients" in out and "SYNTHETIC DATA" in out
    assert (tmp_path / "ds" / "tcga_syn" / file.name).read_bytes() == file.read_bytes()
    # the prepared copy stays marked synthetic, so its checks and reports say so
    assert main(["data", "check", "tcga_porpoise", str(tmp_path / "ds" / "tcga_syn"), "--option", "cohort=syn"]) == 0
    assert "SYNTHETIC DATA" in capsys.readouterr().out
    assert main(args) == 0 and "already present" in capsys.readouterr().out
    assert main(["data", "prepare", "tcga", "--cohort", "blca", "--from", str(file)]) == 2
    assert "cohort" in capsys.readouterr().err

"""Seeds as a study dimension: ``seeds:`` / ``--seeds``, seed_<s>/ folders, mean ± sd, paired
differences with a verdict, resume after a kill, and the restored epochs of the shipped studies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from robustmm.cli import main
from robustmm.config import load_study
from robustmm.config.schema import parse_seeds
from robustmm.errors import ConfigError
from robustmm.evaluate.seeds import aggregate_seeds
from robustmm.report.repeats import verdict_text

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- parsing
def test_seed_lists_and_ranges() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    assert parse_seeds(3) == [3]
    assert parse_seeds([1, "3-4"]) == [1, 3, 4]
    for bad, msg in (("4-0", "backwards"), ("0,0", "twice"), ("a", "cannot read"), ([], "at least one")):
        with pytest.raises(ValueError, match=msg):
            parse_seeds(bad)


def test_study_seeds_key_and_cli_form(tiny_study: Path) -> None:
    assert load_study(tiny_study, ["seeds=0-2"]).seeds == [0, 1, 2]
    assert load_study(tiny_study, ["seeds=[4, 1]"]).seeds == [4, 1]
    assert load_study(tiny_study).seeds is None
    with pytest.raises(ConfigError, match="seeds"):
        load_study(tiny_study, ["seeds=2-1"])
    with pytest.raises(ConfigError, match="compare_to 'mmanet' is not a method id"):
        load_study(tiny_study, ["evaluation.compare_to=mmanet"])


def test_cli_seeds_are_read_as_written(tiny_study: Path, monkeypatch, capsys) -> None:
    # --seeds went through YAML: 010 ran seed 8 (octal), 1:30 seed 90 (sexagesimal), 0x1 seed 1
    import robustmm.study
    from robustmm.cli import main

    ran = []
    monkeypatch.setattr(robustmm.study, "run_study", lambda cfg, **kw: ran.append(cfg.seeds))
    assert main(["run", str(tiny_study), "--seeds", "010,3"]) == 0 and ran == [[10, 3]]
    for text in ("1:30", "0x1", ""):
        assert main(["run", str(tiny_study), "--seeds", text]) == 2
        assert f"cannot read seeds '{text}'" in capsys.readouterr().err
    assert ran == [[10, 3]]


def test_seeds_numpy_cannot_take_are_refused_when_the_study_is_read(tiny_study: Path) -> None:
    # seed: -1 stopped the run with scikit-learn's traceback after its folder was made
    for value in (-1, 2**32):
        with pytest.raises(ConfigError, match="'seed': Input should be"):
            load_study(tiny_study, [f"seed={value}"])
    with pytest.raises(ConfigError, match=r"seed range '4294967290-4294967296' ends past the largest seed 4294967295"):
        load_study(tiny_study, ["seeds=4294967290-4294967296"])
    with pytest.raises(ConfigError, match=r"seeds must be in \[0, 4294967295\] \(got \[4294967296\]\)"):
        load_study(tiny_study, ["seeds=[1, 4294967296]"])
    assert load_study(tiny_study, ["seed=4294967295"]).seed == 2**32 - 1
    # found in one pass over a long range
    with pytest.raises(ValueError, match=r"seed \[7\] listed twice; list each seed once"):
        parse_seeds("0-50000,7")


# --------------------------------------------------------------------------- aggregation
def _doc(values: dict[tuple[str, str], float]) -> dict:
    return {"study": "s", "synthetic": True, "primary_metric": "auc",
            "records": [{"method": m, "scenario": "natural", "group": "natural", "rate": None, "metric": metric,
                         "value": v, "ci_low": None, "ci_high": None, "n": 10, "drop": 0.0}
                        for (m, metric), v in values.items()],
            "selection": {"a": [{"stage": "a", "restored_epoch": 5}]}}


def test_predicted_class_counts_are_kept_per_seed() -> None:
    """The report flags a seed whose model gave everyone the same class; with folds inside each seed,
    a seed counts as one class only when every fold predicted one class."""
    docs = {s: _doc({("a", "accuracy"): 0.5, ("b", "auc"): 0.7}) for s in (0, 1, 2)}
    for s, classes in zip(docs, (1, [1, 1], [1, 3])):
        docs[s]["records"][0]["predicted_classes"] = classes
    rec = {r["method"]: r for r in aggregate_seeds(docs, None)["records"]}
    assert rec["a"]["predicted_classes"] == {"0": 1, "1": 1, "2": 3}
    assert "predicted_classes" not in rec["b"]  # a binary task: sensitivity and specificity say it


def test_n_is_per_seed_the_smallest_count_and_every_seeds_count_is_listed() -> None:
    # each seed evaluates its own split; n was the first seed's count, whatever the others evaluated
    docs = {s: _doc({("a", "auc"): 0.7, ("b", "auc"): 0.6}) for s in (3, 1, 2)}
    for s, n in zip(docs, (12, 9, 11)):
        docs[s]["records"][0]["n"] = n
    del docs[1]["records"][1]  # a scenario skipped in one seed: no count there
    rec = {r["method"]: r for r in aggregate_seeds(docs, None)["records"]}
    assert rec["a"]["n"] == 9 and rec["a"]["n_per_seed"] == {"3": 12, "1": 9, "2": 11}
    assert rec["b"]["n"] == 10 and rec["b"]["n_per_seed"] == {"3": 10, "1": None, "2": 10}


def test_predicted_class_counts_are_kept_per_fold(tiny_study: Path, tmp_path: Path) -> None:
    """The same for a mean over folds: the fold values' list gets its predicted-class counts."""
    from robustmm.study import RunResult, _write_cv_outputs

    cfg = load_study(tiny_study, ["report.plots=false", "report.html=false"])
    folds = []
    for k, classes in enumerate((1, 3)):
        doc = _doc({("a", "accuracy"): 0.5, ("b", "auc"): 0.7})
        doc["records"][0]["predicted_classes"] = classes
        (tmp_path / f"fold_{k}").mkdir()
        (tmp_path / f"fold_{k}" / "metrics.json").write_text(json.dumps(doc))
        folds.append(RunResult(tmp_path / f"fold_{k}", doc["records"], "", True))
    rec = {r["method"]: r for r in _write_cv_outputs(tmp_path, cfg, folds).records}
    assert rec["a"]["predicted_classes"] == [1, 3] and "predicted_classes" not in rec["b"]


def test_mean_sd_and_paired_verdict_have_known_values() -> None:
    a, ref = [0.8, 0.9, 0.85], [0.7, 0.8, 0.8]  # differences 0.1, 0.1, 0.05
    docs = {s: _doc({("a", "auc"): a[i], ("ref", "auc"): ref[i], ("a", "ibs"): a[i], ("ref", "ibs"): ref[i]})
            for i, s in enumerate([0, 1, 2])}
    doc = aggregate_seeds(docs, "ref")
    rec = {(r["method"], r["metric"]): r for r in doc["records"]}
    assert rec[("a", "auc")]["value"] == pytest.approx(0.85)
    assert rec[("a", "auc")]["sd"] == pytest.approx(0.05)
    assert rec[("a", "auc")]["seeds"] == {"0": 0.8, "1": 0.9, "2": 0.85}
    pair = {p["metric"]: p for p in doc["paired"]["records"]}
    # mean 0.0833, sd 0.0289, t(0.975, 2) = 4.303: interval [0.0116, 0.1551]
    assert pair["auc"]["mean"] == pytest.approx(0.08333, abs=1e-4)
    assert pair["auc"]["ci_low"] == pytest.approx(0.0116, abs=2e-4)
    assert pair["auc"]["ci_high"] == pytest.approx(0.1551, abs=2e-4)
    assert pair["auc"]["agree"] == 3 and pair["auc"]["verdict"] == "better"
    assert pair["ibs"]["verdict"] == "worse"  # lower is better
    assert rec[("a", "auc")]["verdict"] == "better" and rec[("ref", "auc")]["verdict"] is None
    text = verdict_text(doc)
    assert "verdict" in text and "better" in text and "+0.083 [+0.012, +0.155]" in text and "3/3" in text
    assert "(only 3 seeds: the interval is wide below 5 seeds and the verdict is 'no clear difference' below 3;" in text
    assert doc["selection"]["seed_1"]["a"][0]["restored_epoch"] == 5


def test_overlapping_interval_is_no_clear_difference() -> None:
    a, ref = [0.8, 0.7, 0.9], [0.75, 0.8, 0.8]
    docs = {s: _doc({("a", "auc"): a[s], ("ref", "auc"): ref[s]}) for s in range(3)}
    assert aggregate_seeds(docs, "ref")["paired"]["records"][0]["verdict"] == "no clear difference"
    assert aggregate_seeds(docs, None)["paired"]["records"] == []


# --------------------------------------------------------------------------- end to end
def run_cli(*args: str) -> int:
    return main(["run", *args, "--quiet"])


def test_seeds_run_writes_seed_folders_and_verdicts(tiny_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(str(tiny_study), "--out", str(out), "--seeds", "0,1", "--set", "training.epochs=1") == 0
    printed = capsys.readouterr().out
    assert "paired difference vs dropout_baseline" in printed and "no clear difference" in printed
    for s in (0, 1):
        assert (out / f"seed_{s}" / "metrics.json").is_file() and (out / f"seed_{s}" / "config.yaml").is_file()
        assert yaml.safe_load((out / f"seed_{s}" / "config.yaml").read_text())["seed"] == s
    doc = json.loads((out / "metrics.json").read_text())
    seed_docs = [json.loads((out / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]
    auc = {(r["method"], r["scenario"]): r for r in doc["records"] if r["metric"] == "auc"}
    per_seed = [{(r["method"], r["scenario"]): r["value"] for r in d["records"] if r["metric"] == "auc"}
                for d in seed_docs]
    key = ("complete_only", "natural")
    assert auc[key]["value"] == pytest.approx((per_seed[0][key] + per_seed[1][key]) / 2)
    assert doc["paired"]["reference"] == "dropout_baseline"
    assert {p["method"] for p in doc["paired"]["records"]} == {"complete_only"}
    assert set(doc["selection"]) == {"seed_0", "seed_1"}
    assert "verdict" in (out / "metrics.csv").read_text().splitlines()[0]
    html = (out / "report.html").read_text()
    assert "method − dropout_baseline" in html and "seed_1/report.html" in html
    assert "verdict" in (out / "summary.txt").read_text()


def test_a_failure_in_a_seed_advises_resuming_the_whole_run(tiny_study: Path, tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    """A seed's folder cannot be resumed on its own (its config holds one seed, not the study's --seeds), so
    the advice names the run folder, which --resume continues."""
    import robustmm.study
    from robustmm.errors import DataError

    real = robustmm.study._run_single

    def fails_in_seed_1(cfg, run_dir, *args):
        if Path(run_dir).name == "seed_1":
            raise DataError("a problem with seed 1's data")
        return real(cfg, run_dir, *args)

    monkeypatch.setattr(robustmm.study, "_run_single", fails_in_seed_1)
    out = tmp_path / "run"
    assert run_cli(str(tiny_study), "--out", str(out), "--seeds", "0-1", "--set", "training.epochs=1") == 2
    err = capsys.readouterr().err
    assert f"--resume {out};" in err and "seed_1" not in err
    assert "seed_0" in err and "removed" not in err  # the finished seed is kept, not thrown away with the folder


def test_a_seed_stopped_before_its_config_is_run_again_on_resume(tiny_study: Path, tmp_path: Path) -> None:
    """A seed's run writes its lock, its data fingerprint and its log before config.yaml: a seed folder killed
    in between holds only those, trained nothing, and is started again (not refused as a foreign folder)."""
    out, args = tmp_path / "run", ["--seeds", "0,1", "--set", "training.epochs=1"]
    assert run_cli(str(tiny_study), "--out", str(out), *args) == 0
    doc = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out / "seed_1")
    (out / "seed_1").mkdir()
    for name in (".robustmm.lock", "data_fingerprint.json", "log.txt"):
        (out / "seed_1" / name).write_text("")
    (out / "metrics.json").unlink()
    assert run_cli(str(tiny_study), "--resume", str(out), *args) == 0
    assert json.loads((out / "metrics.json").read_text()) == doc


def test_seeds_are_added_to_a_finished_run_by_resuming_it_with_more(tiny_study: Path, tmp_path: Path,
                                                                     capsys) -> None:
    """--seeds 0,1 then --resume with --seeds 0-2: seeds 0 and 1 are reused as they are, seed 2 runs, and the
    top level aggregates the three as a run started with --seeds 0-2 does."""
    epochs = ["--set", "training.epochs=1"]
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    assert run_cli(str(tiny_study), "--out", str(out), "--seeds", "0,1", *epochs) == 0
    kept = {s: (out / f"seed_{s}" / "metrics.json").read_bytes() for s in (0, 1)}
    assert run_cli(str(tiny_study), "--resume", str(out), "--seeds", "0-2", *epochs) == 0
    assert {s: (out / f"seed_{s}" / "metrics.json").read_bytes() for s in (0, 1)} == kept
    assert yaml.safe_load((out / "config.yaml").read_text())["seeds"] == [0, 1, 2]
    assert "seeds [2] added to the seeds [0, 1] of this run" in (out / "log.txt").read_text()
    assert run_cli(str(tiny_study), "--out", str(fresh), "--seeds", "0-2", *epochs) == 0
    assert json.loads((out / "metrics.json").read_text()) == json.loads((fresh / "metrics.json").read_text())

    capsys.readouterr()
    assert run_cli(str(tiny_study), "--resume", str(out), "--seeds", "0,1", *epochs) == 2
    assert "--seeds 0,1 leaves out seed 2 of that run (seeds 0,1,2)" in capsys.readouterr().err
    assert run_cli(str(tiny_study), "--resume", str(out), *epochs) == 2
    assert "that run has seeds 0,1,2; resume it with --seeds 0,1,2" in capsys.readouterr().err
    assert run_cli(str(tiny_study), "--resume", str(out), "--seeds", "2,1,0", *epochs) == 2
    assert "that run has seeds 0,1,2 in this order; resume with --seeds 0,1,2" in capsys.readouterr().err


def test_an_interrupted_addition_of_seeds_is_not_taken_for_the_finished_run(tiny_study: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    """Killed after config.yaml lists the new seeds: the top-level metrics.json is still that of the old seeds,
    and a resume must run the new ones rather than report it."""
    import robustmm.study

    epochs = ["--set", "training.epochs=1"]
    out = tmp_path / "run"
    assert run_cli(str(tiny_study), "--out", str(out), "--seeds", "0,1", *epochs) == 0

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(robustmm.study, "render", interrupted)  # seed 2's report: killed while seed 2 runs
        assert run_cli(str(tiny_study), "--resume", str(out), "--seeds", "0-2", *epochs) == 130
    assert json.loads((out / "metrics.json").read_text())["seeds"]["seeds"] == [0, 1]
    assert run_cli(str(tiny_study), "--resume", str(out), "--seeds", "0-2", *epochs) == 0
    assert json.loads((out / "metrics.json").read_text())["seeds"]["seeds"] == [0, 1, 2]


def test_seeds_cannot_be_added_to_a_single_run(tiny_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(str(tiny_study), "--out", str(out), "--set", "training.epochs=1") == 0
    capsys.readouterr()
    assert run_cli(str(tiny_study), "--resume", str(out), "--seeds", "0-2", "--set", "training.epochs=1") == 2
    err = capsys.readouterr().err
    assert "that run is a single run (seed 3), not one of several seeds, so --seeds cannot be added" in err
    assert "start a new run with --seeds 0,1,2" in err


@pytest.mark.slow
def test_kill_during_seed_1_then_resume_gives_the_uninterrupted_metrics(tiny_study: Path, tmp_path: Path) -> None:
    """The issue's acceptance run, on the tiny study: --seeds 0-2 --set training.epochs=3."""
    args = ["--seeds", "0-2", "--set", "training.epochs=3"]
    a, c = tmp_path / "a", tmp_path / "c"
    assert run_cli(str(tiny_study), "--out", str(a), *args) == 0
    assert all((a / f"seed_{s}" / "metrics.json").is_file() for s in range(3))
    doc = json.loads((a / "metrics.json").read_text())
    assert doc["seeds"]["seeds"] == [0, 1, 2] and doc["paired"]["records"]

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robustmm.cli", "run", str(tiny_study), "--out", str(c),
                             "--quiet", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # killed inside a stage: a checkpoint of an unfinished stage (on a loaded machine a 3-epoch stage can finish
    # between two looks, so both stages of seed 1 are watched)
    ckpts = [c / "seed_1" / "checkpoints" / m / f"{m}.pt" for m in ("complete_only", "dropout_baseline")]
    deadline, killed = time.time() + 300, False
    while time.time() < deadline and proc.poll() is None and not killed:
        for ckpt in filter(Path.is_file, ckpts):
            try:
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
            except Exception:  # being replaced right now
                continue
            if not state.get("complete"):
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
        time.sleep(0.01)
    proc.wait()
    assert killed, "the run finished or stalled before seed 1 could be interrupted"
    assert (c / "seed_0" / "metrics.json").is_file() and not (c / "seed_1" / "metrics.json").exists()
    assert not (c / "metrics.json").exists()
    assert run_cli(str(tiny_study), "--resume", str(c), *args) == 0
    assert json.loads((c / "metrics.json").read_text()) == doc
    assert "resuming after epoch" in (c / "log.txt").read_text()


# --------------------------------------------------------------------------- shipped studies
def _tiny_overrides(study: str, tmp: Path, adni_root: Path) -> list[str]:
    """Shrink a shipped study to seconds: small data, small networks, 3 epochs, few bootstraps;
    the study's selection policy is kept."""
    common = ["training.epochs=3", "training.device=cpu", "training.threads=1", "evaluation.bootstrap=5",
              f"output_dir={tmp / 'runs'}"]
    if study.startswith("adni"):
        small = ["data.synthetic=null", f"data.root={adni_root}", "data.volume_shape=[16,16,16]",
                 "model.volume.channels=[4,8]", "model.volume.strides=[2,2]", "model.embed_dim=16",
                 "model.trunk_hidden=16"]
        if study == "adni_mci_itcfn":
            small += [f"methods.{i}.{k}" for i in range(5) for k in (
                "generator={epochs: 3, channels: [8, 8], codebook_size: 16, codebook_dim: 4, batch_size: 8, "
                "adversarial_warmup_epochs: 1, discriminator_channels: 4, discriminator_layers: 1}",
                "dim=16", "fused_dim=16", "heads=2", "resnet_planes=[4,4,8,8]")]
        return common + small
    if study == "brats_missing":
        return common + [f"data.root={tmp / 'brats'}", "data.synthetic={cases: 12, shape: [16, 16, 16], seed: 0}",
                         "data.options.spatial_size=[16,16,16]", "model.volume.channels=[4,8]",
                         "model.volume.strides=[1,2]"]
    if study.startswith("mosi"):
        return common + [f"data.root={tmp / 'mosi'}", "data.synthetic.n_train=60", "data.synthetic.n_valid=20",
                         "data.synthetic.n_test=20", "data.synthetic.seq_len=8"]
    if study == "tcga_blca_survival":
        return common + [f"data.root={tmp / 'tcga'}", "data.synthetic={patients: 80, seed: 0}",
                         "data.options.cohort=syn", "split.fold=0", "methods.2.unipro_epochs=3",
                         "methods.2.multipro_epochs=3"]
    raise AssertionError(f"no tiny version of {study}; add one here")


STUDIES = sorted(p.stem for p in (REPO / "studies").glob("*.yaml") if p.stem != "adni_mci_sweep")


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_shipped_study_restores_no_epoch_0_or_1(study: str, tiny_adni_root: Path, tmp_path: Path) -> None:
    from robustmm.study import run_study

    cfg = load_study(REPO / "studies" / f"{study}.yaml", _tiny_overrides(study, tmp_path, tiny_adni_root))
    result = run_study(cfg, progress=False)
    selection = json.loads((result.run_dir / "metrics.json").read_text())["selection"]
    stages = [s for stages in selection.values() for s in stages]
    assert stages, selection
    for s in stages:
        assert s["restored_epoch"] >= 2, s


def test_benchmark_table_cells() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import seed_runs
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert seed_runs.mean_sd([0.8, 0.9, None, 0.85]) == "0.850 ± 0.050"
    assert seed_runs.mean_sd([None]) == "n/a" and seed_runs.mean_sd([0.5]) == "0.500"
    d = seed_runs.paired([0.8, 0.9, 0.85], [0.7, 0.8, 0.8], "auc")
    assert seed_runs.paired_cell(d) == "+0.083 [+0.012, +0.155], 3/3, better"
    assert seed_runs.paired([10.0, 9.0, 9.6], [8.0, 7.0, 7.5], "hd95_tc")["verdict"] == "worse"
    lines = seed_runs.paired_table({"mmanet - dropout_baseline": {"AUILC": d}})
    assert lines[0] == "| comparison | AUILC |" and "better" in lines[2]


def test_benchmark_records_its_process_time_and_rewrites_the_markdown(tmp_path: Path) -> None:
    import time

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import seed_runs
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    results = tmp_path / "bench"
    results.with_suffix(".json").write_text(json.dumps({"runs": {"0": {}}}))
    start = time.process_time() - 2.0  # as if the benchmark had used two seconds of CPU
    seed_runs.record_cpu_seconds(results, start, lambda doc: f"cpu {doc['cpu_seconds']:.0f} s\n")
    doc = json.loads(results.with_suffix(".json").read_text())
    assert doc["runs"] == {"0": {}} and 2.0 <= doc["cpu_seconds"] < 10.0
    assert results.with_suffix(".md").read_text() == "cpu 2 s\n"


def test_benchmark_results_of_other_seeds_combine_and_are_kept(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import seed_runs
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    settings = {"cohort": "c", "overrides": ["training.selection.scenarios=evaluation"]}
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    first.with_suffix(".json").write_text(json.dumps({"settings": settings, "runs": {"30": {"synthetic": True}},
                                                      "summary": 1}))
    second.with_suffix(".json").write_text(json.dumps({"settings": settings,
                                                       "runs": {"35": {"synthetic": True, "x": 2}}}))
    other.with_suffix(".json").write_text(json.dumps({"settings": {**settings, "cohort": "d"}, "runs": {"36": {}}}))
    both = tmp_path / "both"
    both.with_suffix(".json").write_text(json.dumps({"settings": settings, "runs": {"40": {"synthetic": True}}}))
    seed_runs.combine_results([first, second], both, settings)
    assert json.loads(both.with_suffix(".json").read_text()) == {
        "settings": settings, "runs": {"30": {"synthetic": True}, "35": {"synthetic": True, "x": 2},
                                       "40": {"synthetic": True}}}
    trained = []
    doc = seed_runs.run_seeds(both, settings, [30, 35, 40], lambda seed: trained.append(seed),
                              lambda doc: {"summary": sorted(doc["runs"])}, lambda doc: "table\n", str)
    assert trained == [] and doc["summary"] == ["30", "35", "40"]
    with pytest.raises(SystemExit, match="other settings"):
        seed_runs.combine_results([first, other], tmp_path / "bad", settings)
    with pytest.raises(SystemExit, match="other settings"):
        seed_runs.combine_results([first], tmp_path / "bad", {**settings, "cohort": "d"})
    with pytest.raises(SystemExit, match=r"seeds \['30'\] appear in more than one file"):
        seed_runs.combine_results([first, first], tmp_path / "bad", settings)


def test_a_one_seed_run_is_counted_in_the_singular() -> None:
    from robustmm.report.html import _runs_text

    # --seeds 3 printed "mean ± sd over 1 seeds [3]"
    doc = {"seeds": {"seeds": [3]}, "paired": {}, "primary_metric": "auc"}
    assert verdict_text(doc).startswith("(the table above: mean over seeds") and "over 1 seed [3];" in verdict_text(doc)
    assert _runs_text(doc) == ", mean over 1 seed (3)"

"""``robustmm report RUN_DIR``: the rebuilt report equals the one the run wrote, keeps the figures
only the run could draw, never touches metrics.json, writes atomically, and refuses folders it
cannot rebuild from with a message saying what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.figure
import pytest

from robustmm.cli import main
from robustmm.io import write_json_atomic
from robustmm.report.render import render

CONFIG = "name: tiny\nseed: 3\n"


def _rec(method, scenario, value, rate):
    return {"method": method, "scenario": scenario, "group": "pet_missing", "rate": rate, "metric": "auc",
            "value": value, "ci_low": value - 0.1, "ci_high": value + 0.1, "n": 40, "drop": None}


def _run_folder(folder: Path) -> Path:
    """A finished run folder as the run leaves it: config.yaml, metrics.json, plots/ and report.html,
    with a figure drawn from the trained methods (as the Kaplan-Meier curves are)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG)
    (folder / "plots").mkdir()
    (folder / "plots" / "km_a.png").write_bytes(b"\x89PNG drawn from the predictions")
    doc = {"study": "tiny", "primary_metric": "auc", "synthetic": True,
           "records": [_rec(m, f"pet_missing@{r:g}", v - r / 5, r) for m, v in (("a", 0.8), ("b", 0.7))
                       for r in (0.0, 0.5, 1.0)],
           "sections": [["Kaplan-Meier curves", "<img src='plots/km_a.png' alt='a Kaplan-Meier'>"]]}
    write_json_atomic(folder / "metrics.json", doc)
    render(folder, doc)
    return folder


def test_rebuilt_report_equals_the_runs_and_keeps_figures_only_the_run_could_draw(tmp_path: Path, caplog) -> None:
    run = _run_folder(tmp_path / "run")
    written, metrics = (run / "report.html").read_bytes(), (run / "metrics.json").read_bytes()
    assert "data-file='plots/km_a.png' src='data:image/png;base64," in written.decode()

    assert main(["report", str(run)]) == 0
    assert (run / "report.html").read_bytes() == written and (run / "metrics.json").read_bytes() == metrics

    shutil.rmtree(run / "plots")  # the headline figure is drawn again; the section figure comes from report.html
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").read_bytes() == written and (run / "metrics.json").read_bytes() == metrics
    assert (run / "plots" / "pet_missing_auc.png").is_file()

    shutil.rmtree(run / "plots")  # neither the file nor an earlier report: the page says so, no broken image
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "src='plots/km_a.png'" not in page
    assert "Figure plots/km_a.png is missing from the run folder, and no earlier report.html held it" in page
    assert "figure plots/km_a.png is missing" in caplog.text
    assert (run / "metrics.json").read_bytes() == metrics



def test_rebuild_honours_the_runs_report_plots_false(tmp_path: Path, capsys) -> None:
    run = tmp_path / "cv"
    run.mkdir()
    (run / "config.yaml").write_text(CONFIG + "report:\n  plots: false\n  html: true\n")
    doc = {"study": "tiny", "primary_metric": "auc", "synthetic": True,
           "records": [_rec("a", f"pet_missing@{r:g}", 0.8 - r / 5, r) for r in (0.0, 0.5, 1.0)]}
    for folder in (run, run / "fold_0"):  # a fold follows the cross-validation run's config.yaml
        folder.mkdir(exist_ok=True)
        write_json_atomic(folder / "metrics.json", doc)
        render(folder, doc, make_plots=False)
        written = (folder / "report.html").read_bytes()
        assert main(["report", str(folder)]) == 0
        assert not (folder / "plots").exists() and (folder / "report.html").read_bytes() == written

    (run / "config.yaml").write_text(CONFIG + "report:\n  plots: 'no'\n")
    assert main(["report", str(run)]) == 2
    assert (f"{run / 'config.yaml'}: 'report.plots' is not true or false; restore the run's config.yaml"
            in capsys.readouterr().err)
    (run / "config.yaml").write_text("report: [\n")
    assert main(["report", str(run)]) == 2
    assert f"{run / 'config.yaml'} cannot be read (" in capsys.readouterr().err
    assert not (run / "plots").exists()

def test_report_plots_are_written_atomically(tmp_path: Path, monkeypatch) -> None:
    run = _run_folder(tmp_path / "run")
    figure = run / "plots" / "pet_missing_auc.png"
    before = figure.read_bytes()

    def interrupted(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render(run, json.loads((run / "metrics.json").read_text()))
    assert figure.read_bytes() == before
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["km_a.png", "pet_missing_auc.png"]


def test_a_fold_report_shows_the_configuration_of_its_cross_validation_run(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "cv")
    fold = run / "fold_1"
    shutil.copytree(run, fold, ignore=shutil.ignore_patterns("fold_*", "config.yaml"))
    assert main(["report", str(fold)]) == 0
    page = (fold / "report.html").read_text()
    assert "<pre># fold_1 of the cross-validation run whose resolved study (../config.yaml) follows\n" + CONFIG in page


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "metrics.json").write_text('{"records": ['),
     "metrics.json cannot be read (Expecting value"),
    (lambda run: (run / "metrics.json").write_text("[1, 2]"),
     "metrics.json is not a robustmm metrics file (a JSON list, not an object)"),
    (lambda run: (run / "metrics.json").write_text('{"records": [], "synthetic": false}'),
     "metrics.json is not a robustmm metrics file: 'primary_metric' is missing"),
    (lambda run: (run / "metrics.json").write_text('{"records": {}, "primary_metric": "auc", "synthetic": false}'),
     "metrics.json is not a robustmm metrics file: 'records' is a dict, not a list"),
    (lambda run: (run / "config.yaml").unlink(),
     "has metrics.json but no config.yaml, whose resolved study the report shows; put the run's config.yaml back"),
])
def test_report_refuses_a_damaged_run_folder_and_changes_nothing(tmp_path: Path, capsys, damage, message) -> None:
    run = _run_folder(tmp_path / "run")
    damage(run)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["report", str(run)]) == 2
    assert message in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files


def test_report_on_an_unfinished_run_says_how_to_finish_it(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    _run_folder(run / "seed_0")
    (run / "seed_1").mkdir()
    (run / "config.yaml").write_text(CONFIG)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert (f"{run} has no metrics.json; the run did not finish (its results are written once every method is "
            f"evaluated): continue it with `robustmm run STUDY --resume {run}`") in err
    assert f"can be reported on their own: {run / 'seed_0'}\n" in err
    assert main(["report", str(tmp_path)]) == 2  # not a run folder at all
    assert f"{tmp_path} has no metrics.json; give a finished run folder or a sweep folder" in capsys.readouterr().err


def test_images_outside_the_run_folder_are_not_inlined(tmp_path: Path) -> None:
    from robustmm.report.html import inline_images

    (tmp_path / "secret.png").write_bytes(b"\x89PNG not part of the run")
    (tmp_path / "run" / "plots").mkdir(parents=True)
    (tmp_path / "run" / "plots" / "a.png").write_bytes(b"\x89PNG")
    page = inline_images("<img src='../secret.png' alt='x'><img src='plots/a.png' alt='a'>", tmp_path / "run")
    assert page.startswith("<img src='../secret.png' alt='x'><img data-file='plots/a.png' src='data:image/png;base64,")


def test_report_on_a_sweep_folder_without_its_base_study_says_so(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"kind": "robustmm-sweep", "study_name": "s",
                                                  "storage": f"sqlite:///{sweep / 'optuna.db'}"}))
    assert main(["report", str(sweep)]) == 2
    assert (f"{sweep / 'config.yaml'} cannot be read ([Errno 2] No such file or directory: "
            f"'{sweep / 'config.yaml'}'); it holds the sweep's base study, which the report and a continued sweep "
            "read: put it back") in capsys.readouterr().err
    assert sorted(p.name for p in sweep.iterdir()) == ["sweep.json"]


SWEEP_STUDY = """
name: s
data: {kind: adni, root: nowhere}
methods: [{name: dropout_baseline}]
evaluation: {scenarios: [{kind: natural}]}
sweep:
  params: {training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2}}
  objectives: [{metric: auc, scenario: natural}]
"""


@pytest.mark.parametrize("snapshot", ['{"directions": [', '{"study_name": "s"}'])
def test_report_on_a_sweep_without_storage_and_with_a_damaged_snapshot_says_so(tmp_path: Path, capsys,
                                                                              snapshot: str) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"kind": "robustmm-sweep", "study_name": "s",
                                                  "storage": f"sqlite:///{tmp_path / 'gone.db'}"}))
    (sweep / "config.yaml").write_text(SWEEP_STUDY)
    (sweep / "trials.json").write_text(snapshot)
    assert main(["report", str(sweep)]) == 2
    assert (f"the storage is unavailable (sqlite:///{tmp_path / 'gone.db'} does not exist here) and "
            f"{sweep / 'trials.json'} is damaged (") in capsys.readouterr().err
    assert sorted(p.name for p in sweep.iterdir()) == ["config.yaml", "sweep.json", "trials.json"]

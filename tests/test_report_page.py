"""report.html of the default study (tiny version): the headline answers the question with the
numbers of metrics.json, every table has n, the natural missing fraction is shown; a screenshot
check with headless Chromium (skipped when it is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from robustmm.cli import main
from robustmm.report import story
from robustmm.report.html import build_page
from robustmm.report.render import render
from robustmm.report.tables import summary_table

REPO = Path(__file__).resolve().parents[1]

TINY = ["data.synthetic.subjects=80", "data.synthetic.native_shape=[16,16,16]", "data.volume_shape=[16,16,16]",
        "model.volume.channels=[4,8]", "model.volume.strides=[2,2]", "model.embed_dim=16", "model.trunk_hidden=16",
        "training.epochs=2", "training.early_stopping.min_epochs=1", "evaluation.bootstrap=30", "training.threads=1",
        "training.device=cpu"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """studies/adni_mci.yaml, as shipped but for size (tiny cohort, 2 epochs, 30 resamples)."""
    base = tmp_path_factory.mktemp("default_study")
    sets = [f"--set={s}" for s in TINY + [f"data.root={base / 'cohort'}"]]
    assert main(["run", str(REPO / "studies" / "adni_mci.yaml"), "--out", str(base / "run"), "--quiet", *sets]) == 0
    return base / "run"


class _Tables(HTMLParser):
    """Header cells of every <table>, with the table's class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[str]]] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs).get("class", ""), []))
        self._in_th = tag == "th"

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th and self.tables:
            self.tables[-1][1].append(data.strip())


def _headline(page: str) -> str:
    match = re.search(r"<p class='headline' id='headline'>(.*?)</p>", page, re.S)
    assert match, "no headline sentence"
    return match.group(1)


def test_headline_sentence_quotes_metrics_json(default_run: Path) -> None:
    doc = json.loads((default_run / "metrics.json").read_text())
    page = (default_run / "report.html").read_text()
    text = _headline(page)
    assert text.startswith("AUC with every PET: ") and "with no PET: " in text
    quoted = re.findall(r"(\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\] \(n = (\d+)\)", text)
    assert len(quoted) == 2, text
    auc = {(r["method"], r["scenario"]): r for r in doc["records"] if r["metric"] == "auc"}
    # the method named is the best one with no PET at all
    at_one = {m: r for (m, s), r in auc.items() if s == "pet_missing@1"}
    best = max(at_one, key=lambda m: at_one[m]["value"])
    other = max((m for m in at_one if m != best), key=lambda m: at_one[m]["value"])
    if at_one[best]["ci_low"] <= at_one[other]["value"] <= at_one[best]["ci_high"]:  # one run cannot separate them
        assert f"— {best} is highest with no PET, but {other} ({at_one[other]['value']:.2f}) lies inside its CI" in text
    else:
        assert f"— {best}, the best of {len(at_one)} methods with no PET" in text
    for (value, lo, hi, n), scenario in zip(quoted, ["mri+pet+clinical", "pet_missing@1"]):
        r = auc[(best, scenario)]
        assert (value, lo, hi) == (f"{r['value']:.2f}", f"{r['ci_low']:.2f}", f"{r['ci_high']:.2f}"), scenario
        assert int(n) == r["n"]
    # with every PET = the subjects that have all three modalities
    data = doc["data"]
    assert auc[(best, "mri+pet+clinical")]["n"] == data["presence_by_split"]["test"]["pet"]
    assert auc[(best, "pet_missing@1")]["n"] == data["splits"]["test"]
    # the headline figure comes right after the sentence, inline
    assert re.search(r"id='headline'>.*?</p>\s*<figure><img id='headline-figure' data-file='plots/pet_missing_auc.png' "
                     r"src='data:image/png;base64,", page, re.S)
    assert "src='plots/" not in page and 'src="plots/' not in page  # one self-contained file
    assert (default_run / "summary.txt").read_text().rstrip().endswith(text.replace("&#x27;", "'"))


def test_every_table_has_n_and_the_natural_missing_fraction(default_run: Path) -> None:
    doc = json.loads((default_run / "metrics.json").read_text())
    page = (default_run / "report.html").read_text()
    parser = _Tables()
    parser.feed(page)
    # results tables; key-value tables and the training record (restored epochs) carry no subjects
    tables = [headers for cls, headers in parser.tables if cls not in ("kv", "training")]
    assert len(tables) >= 10  # comparison + 7 metrics + data tables
    for headers in tables:
        assert "n" in headers, headers
    # natural missingness of PET among the test subjects, from the data section itself
    data = doc["data"]
    natural = 1 - data["presence_by_split"]["test"]["pet"] / data["splits"]["test"]
    assert natural > 0.05
    avail = doc["availability"]
    assert avail["natural"]["missing"]["pet"] == pytest.approx(natural)
    for rate in ("0", "0.2", "0.4", "0.6", "0.8", "1"):
        a = avail[f"pet_missing@{rate}"]
        assert a["natural_missing"]["pet"] == pytest.approx(natural)
        assert a["missing"]["pet"] >= a["natural_missing"]["pet"] - 1e-12
    assert avail["pet_missing@0"]["missing"]["pet"] == pytest.approx(natural)
    assert avail["pet_missing@1"]["missing"]["pet"] == 1.0
    row = re.search(r"<tr><td>pet_missing@0.4</td><td>pet (\d+)%</td><td>pet (\d+)%</td><td>(\d+)</td>", page)
    assert row, "no missing-fraction columns in the tables"
    assert int(row.group(2)) == round(100 * natural)
    assert int(row.group(1)) == round(100 * avail["pet_missing@0.4"]["missing"]["pet"])
    assert "naturally without" in page
    # data section: classes per split add up, exclusions are a table with reasons
    classes = data["classes_by_split"]
    assert sum(sum(v.values()) for v in classes.values()) == data["samples"]
    assert "<h3>Exclusions</h3>" in page and "not MCI at baseline" in page


def test_screenshot_headline_and_first_plot_in_first_1200px(default_run: Path, tmp_path: Path) -> None:
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium')")
    page = (default_run / "report.html").read_text()
    probe = ("<script>window.addEventListener('load',function(){var h=document.getElementById('headline')"
             ".getBoundingClientRect(),f=document.getElementById('headline-figure').getBoundingClientRect();"
             "document.title='POS '+Math.round(h.bottom+scrollY)+' '+Math.round(f.bottom+scrollY)+' '"
             "+Math.round(f.height);});</script></body>")
    probe_file = tmp_path / "probe.html"
    probe_file.write_text(page.replace("</body>", probe))
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=3000"]
    for width in (1280, 412):  # a desktop window and a phone
        dom = subprocess.run(args + [f"--window-size={width},1200", "--dump-dom", probe_file.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        pos = re.search(r"<title>POS (\d+) (\d+) (\d+)</title>", dom)
        assert pos, f"the page did not load in Chromium (width {width})"
        headline_bottom, figure_bottom, figure_height = map(int, pos.groups())
        assert headline_bottom <= 1200 and figure_bottom <= 1200, (width, headline_bottom, figure_bottom)
        assert figure_height > 150  # really drawn, not a broken image
    shot = tmp_path / "report.png"
    subprocess.run(args + ["--window-size=1280,1200", f"--screenshot={shot}", (default_run / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


# ------------------------------------------------------------------ pieces, without a run
def _rec(method, scenario, metric, value, lo, hi, n, group="natural", rate=None):
    return {"method": method, "scenario": scenario, "group": group, "rate": rate, "metric": metric, "value": value,
            "ci_low": lo, "ci_high": hi, "n": n, "drop": None}


def test_flags_single_class_zero_width_and_small_n() -> None:
    records = [_rec("a", "mri", "auc", 0.6, 0.5, 0.7, 104), _rec("a", "mri", "sensitivity", 1.0, 1.0, 1.0, 104),
               _rec("a", "mri", "specificity", 0.0, 0.0, 0.0, 104), _rec("a", "pet", "auc", 0.7, 0.6, 0.8, 12)]
    records += [_rec("b", f"g@{r}", "acc", 0.56, 0.3, 0.7, 40, "g", r) for r in (0.0, 0.5, 1.0)]
    lines, notes = story.flags(records)
    text = " ".join(lines)
    assert "Single-class predictions" in text and "a under mri" in text
    assert "2 CIs of width 0" in text
    assert "Fewer than 30 evaluated subjects in 1 scenario (smallest n = 12, pet)" in text
    assert notes[("a", "mri", "sensitivity")].startswith("predicts one class only")
    assert ("a", "mri", "auc") not in notes  # AUC is still meaningful
    assert notes[("a", "pet", "auc")] == "n = 12 < 30"
    assert "Identical value at every missing rate for b/g/acc" in text
    assert notes[("b", "g@0.5", "acc")] == "same value at every rate"
    # one scenario whose metrics score different numbers of subjects (Non0 leaves the neutral ones out) is one
    sentiment = [_rec("c", "rmfm@0.5", "Acc_3", 0.6, 0.5, 0.7, 25), _rec("c", "rmfm@0.5", "Non0_acc_2", 0.7, 0.6, 0.8, 20)]
    assert "in 1 scenario (smallest n = 20, rmfm@0.5)" in " ".join(story.flags(sentiment)[0])


def test_flags_single_class_runs_behind_a_mean_over_seeds_or_folds() -> None:
    """A mean over runs hides the seeds or folds that predicted one class; runs that all predicted
    both classes are not flagged."""
    def over(kind, rec, values):
        return {**rec, kind: dict(zip("012", values)) if kind == "seeds" else list(values)}

    records = [over("seeds", _rec("a", "natural", "sensitivity", 1 / 3, 0.0, 1.0, 104), [0.0, 0.5, 0.5]),
               over("seeds", _rec("a", "natural", "specificity", 0.77, 0.3, 1.0, 104), [1.0, 0.6, 0.7]),
               over("seeds", _rec("a", "natural", "accuracy", 0.7, 0.5, 0.9, 104), [0.6, 0.7, 0.8]),
               over("folds", _rec("b", "natural", "sensitivity", 0.5, 0.0, 1.0, 104), [0.0, 1.0]),
               over("folds", _rec("b", "natural", "specificity", 0.5, 0.0, 1.0, 104), [1.0, 0.0]),
               over("seeds", _rec("c", "natural", "sensitivity", 0.2, 0.1, 0.3, 104), [0.2, 0.3, 0.1]),
               over("seeds", _rec("c", "natural", "specificity", 0.97, 0.9, 1.0, 104), [0.9, 1.0, 1.0])]
    lines, notes = story.flags(records)
    assert lines[0].startswith("Single-class predictions (sensitivity or specificity 0 at the threshold) in 2 "
                               "results: a under natural (in 1 of 3 runs), b under natural (in 2 of 2 runs).")
    assert notes[("a", "natural", "accuracy")] == "predicts one class only in 1 of 3 runs"
    assert not any(key[0] == "c" for key in notes)


def test_flags_one_class_of_several_for_everyone_also_behind_a_mean_over_runs() -> None:
    """Records of tasks with several classes carry the number of classes predicted (per fold or seed
    behind a mean); 1 is flagged on every metric of the cell, more than 1 is not."""
    def rec(method, metric, classes, **runs):
        return {**_rec(method, "natural", metric, 0.4, 0.3, 0.5, 60), "predicted_classes": classes, **runs}

    records = [rec("a", "Acc_7", 1), rec("a", "F1_3", 1), rec("b", "Acc_7", 4),
               rec("c", "accuracy", {"0": 1, "1": 3, "2": 2}, seeds={"0": 0.3, "1": 0.5, "2": 0.4}),
               rec("d", "accuracy", [1, 1], folds=[0.4, 0.4]), rec("e", "accuracy", [2, None], folds=[0.5, None])]
    lines, notes = story.flags(records)
    assert lines[0] == ("Single-class predictions (the same class for every evaluated subject) in 3 results: a under "
                        "natural, c under natural (in 1 of 3 runs), d under natural (in 2 of 2 runs). Their metrics "
                        "only say how common that class is among the subjects, not what the model tells apart.")
    assert notes[("a", "natural", "Acc_7")] == notes[("a", "natural", "F1_3")] == "predicts one class only"
    assert notes[("c", "natural", "accuracy")] == "predicts one class only in 1 of 3 runs"
    assert not any(key[0] in "be" and text.startswith("predicts") for key, text in notes.items())


def test_flags_zero_width_ci_also_over_identical_seeds_and_n_below_30_only() -> None:
    """Identical values over seeds give a t-interval a few ulps wide (their mean is rounded): still
    width 0. A narrow but real interval, a missing one and n = 30 are not flagged."""
    from robustmm.metrics.paired import t_interval

    low, high = t_interval([0.7, 0.7, 0.7], 0.95, "auc")
    records = [_rec("a", "natural", "auc", 0.7, low, high, 30), _rec("b", "natural", "auc", 0.7, 0.699, 0.701, 30),
               _rec("c", "natural", "auc", 0.7, None, None, 30), _rec("a", "pet", "auc", 0.7, 0.6, 0.8, 29)]
    lines, notes = story.flags(records)
    assert lines == ["1 CI of width 0 (every bootstrap resample, or every seed or fold, gave the same value, "
                     "usually a degenerate prediction): a/natural/auc",
                     "Fewer than 30 evaluated subjects in 1 scenario (smallest n = 29, pet): intervals are wide "
                     "and can be unreliable."]
    assert notes == {("a", "natural", "auc"): "CI of width 0", ("a", "pet", "auc"): "n = 29 < 30"}


def test_glossary_explains_every_reported_metric_by_its_own_entry() -> None:
    from robustmm.metrics.emotion import HIGHER_IS_BETTER

    reported = [*HIGHER_IS_BETTER, "auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1",
                "brier", "c_index", "td_auc", "ibs", "dice_wt", "hd95_et"]
    text = dict(story.glossary(reported))
    assert set(reported) <= set(text)
    # the sentiment pairs are binary, not "accuracy over classes", and Non0 says its n counts the scored ones
    assert "non-neutral subjects only" in text["Non0_acc_2"] and "its n counts them" in text["Non0_F1"]
    assert text["Has0_acc_2"].startswith("negative vs non-negative")
    assert text["Non0_acc_2_polar"].startswith("as Non0_acc_2,")
    assert "sentiment classes" in text["Acc_7"] and "neutral" in text["F1_3"]
    assert "positive class" in text["f1"] and "lower is better" in text["brier"]


def test_oracle_section_names_its_sample_sizes_and_splits_region_ceilings_into_columns() -> None:
    from robustmm.data.synth.oracle import summary
    from robustmm.report.html import data_section

    adni = data_section({"oracle": summary("auc", "logistic regression", {"mri": 0.7, "mri+pet": 0.8}, 5000, 0,
                                           "a note")})
    assert "fitted on 5000 simulated subjects and scored on 5000 others" in adni and "None" not in adni
    assert "<td>mri+pet</td><td>0.8</td><td>5000</td>" in adni and "not a bound on every model" in adni
    brats = data_section({"oracle": {"metric": "dice", "model": "linear discriminant analysis", "voxels_fit": 900,
                                     "voxels_scored": 900, "ceilings": {"flair": {"WT": 0.8, "TC": 0.3, "ET": 0.2}}}})
    assert ("<th scope='col'>subset</th><th scope='col'>WT</th><th scope='col'>TC</th><th scope='col'>ET</th>"
            "<th scope='col'>n</th>") in brats
    assert "<td>flair</td><td>0.8</td><td>0.3</td><td>0.2</td><td>900</td>" in brats and "900 simulated voxels" in brats


def test_undefined_values_are_plotted_around_and_flagged(tmp_path: Path) -> None:
    # a C-index without a death among the test patients is None; one fold of five could not compute it
    records = [_rec("cox", s, "c_index", None, None, None, 2, "subsets") for s in ("complete", "without_cnv")]
    records += [_rec("cox", f"cnv_missing@{r:g}", "c_index", v, None, None, 2, "cnv_missing", r)
                for r, v in ((0.0, None), (0.5, 0.6), (1.0, 0.55))]
    records.append({**_rec("cox", "natural", "c_index", 0.62, 0.5, 0.7, 120), "folds": [0.6, 0.7, None, 0.6, 0.58]})
    doc = {"records": records, "primary_metric": "c_index", "synthetic": True}
    render(tmp_path, doc)  # raised TypeError in the subset bars
    lines, notes = story.flags(records)
    assert lines[0].startswith("3 values could not be computed and show as n/a")
    assert notes[("cox", "complete", "c_index")].startswith("undefined")
    assert lines[1].startswith("1 value is a mean over fewer folds or seeds than the study ran")
    assert notes[("cox", "natural", "c_index")].startswith("mean over 4 of 5 runs")
    assert "could not be computed" in (tmp_path / "report.html").read_text()


def test_an_upper_bound_is_not_ranked_in_the_answer() -> None:
    # ITCFN's upper bound reads the real PET the scenario hides: its "no PET" score is not a no-PET score
    records = [_rec(m, f"pet_missing@{r:g}", "auc", v - r / 5, v - r / 5 - 0.05, v - r / 5 + 0.05, 104, "pet_missing", r)
               for m, v in (("itcfn_mean", 0.8), ("itcfn_upper_bound", 0.9)) for r in (0.0, 0.5, 1.0)]
    doc = {"records": records, "primary_metric": "auc", "upper_bounds": ["itcfn_upper_bound"]}
    text = story.headline(doc).text
    assert "with no PET: 0.60 [0.55, 0.65] (n = 104) — itcfn_mean." in text
    assert text.endswith("(itcfn_upper_bound: an upper bound that sees inputs the scenarios hide, shown in the tables "
                         "but not ranked.)")
    assert "itcfn_upper_bound, the best of 2 methods" in story.headline({**doc, "upper_bounds": []}).text


def test_an_upper_bound_is_never_marked_best_in_the_tables() -> None:
    from robustmm.report.html import scenario_table

    records = [_rec(m, "pet_missing@1", "auc", v, v - 0.05, v + 0.05, 104, "pet_missing", 1.0)
               for m, v in (("itcfn_mean", 0.6), ("itcfn_zero", 0.55), ("itcfn_upper_bound", 0.9))]
    ranked = scenario_table(records, "auc", {}, {}, frozenset({"itcfn_upper_bound"}))
    assert "<td class='best'>0.600 [0.550, 0.650] ★</td>" in ranked
    assert ranked.count("class='best'") == 1
    assert "itcfn_upper_bound (upper bound, not ranked)" in ranked
    unranked = scenario_table(records, "auc", {}, {})
    assert "<td class='best'>0.900 [0.850, 0.950] ★</td>" in unranked


def test_comparison_from_seeds_renders_verdicts() -> None:
    records = [{**_rec(m, "natural", "auc", v, v - 0.1, v + 0.1, 104), "sd": 0.02} for m, v in (("base", 0.7),
                                                                                              ("new", 0.75))]
    doc = {"study": "s", "primary_metric": "auc", "synthetic": False, "records": records, "data": {},
           "seeds": {"seeds": [0, 1, 2, 3, 4], "ci": "95% t-interval over seed means"},
           "paired": {"reference": "base", "confidence": 0.95, "records": [
               {"method": "new", "reference": "base", "scenario": "natural", "metric": "auc", "mean": 0.05,
                "ci_low": 0.01, "ci_high": 0.09, "n": 5, "agree": 5, "verdict": "better"}]}}
    page = build_page(doc, None, [], "")
    assert ("<td>natural</td><td>new</td><td>0.750 ± 0.020</td><td>0.700 ± 0.020</td><td>+0.050 [+0.010, +0.090]"
            "</td><td>5/5</td><td>better</td>") in page
    assert page.count("+0.050 [+0.010, +0.090]") == 1  # one table of the paired differences, not two
    assert "Method comparison" in page and "sides swapped for lower-is-better metrics" in page
    without = build_page({**doc, "seeds": None, "paired": None}, None, [], "")
    assert "overlapping intervals" in without and "<td class='best'>0.750 [0.650, 0.850]" in without


def test_selection_and_inner_runs_are_rendered_from_the_document() -> None:
    """Model selection, the restored epochs per seed/fold and the links to the inner runs come from
    metrics.json; sections an older metrics.json stored for them are not shown twice."""
    stage = {"stage": "a", "restored_epoch": 3, "epochs_run": 6, "optimizer_steps": 60, "reason": "lowest loss"}
    records = [_rec("a", "natural", "auc", 0.7, 0.6, 0.8, 104), _rec("b", "natural", "auc", 0.6, 0.5, 0.7, 104)]
    one = {"study": "s", "primary_metric": "auc", "synthetic": False, "records": records, "data": {},
           "selection": {"a": [stage]}, "sections": [["Model selection", "<p>old</p>"], ["Extra", "<p>kept</p>"]]}
    page = build_page(one, None, [], "")
    assert page.count("<h2>Model selection</h2>") == 1 and "<p>old</p>" not in page and "<p>kept</p>" in page
    assert "<td>a</td><td>a</td><td>3</td><td>6</td><td>60</td><td>lowest loss</td>" in page
    cv = {**one, "cross_validation": {"folds": 2, "ci": "t-interval over fold means"}, "sections": [],
          "selection": {"fold_0": {"a": [stage]}, "fold_1": {"a": [{**stage, "restored_epoch": 4}]}}}
    page = build_page(cv, None, [], "")
    assert "Restored epochs over folds" in page and "<td>a</td><td>a</td><td>3</td><td>4</td>" in page
    assert "fold_1/report.html" in page and "a t-interval over fold means" in page
    seeds = {**cv, "seeds": {"seeds": [0, 1], "folders": ["seed_0", "seed_1"]},
             "selection": {"seed_0": cv["selection"], "seed_1": cv["selection"]}}
    page = build_page(seeds, None, [], "")
    assert "Restored epochs over seeds" in page and "<td>fold_0:3 fold_1:4</td>" in page
    assert "seed_1/report.html" in page and "fold_1/report.html" not in page


def test_cross_validation_summary_says_t_interval(tmp_path: Path) -> None:
    records = [_rec("a", "natural", "auc", 0.7, 0.6, 0.8, 300)]
    assert "auc (95% bootstrap CI)" in summary_table(records, "auc", False)
    doc = {"study": "cv", "primary_metric": "auc", "synthetic": False, "records": records, "data": {},
           "cross_validation": {"folds": 5, "ci": "t-interval over fold means"}}
    summary = render(tmp_path, doc, make_plots=False)
    assert "auc (95% t-interval over fold means)" in summary and "bootstrap" not in summary.splitlines()[0]
    assert "brackets: 95% CI (t-interval over fold means)" in (tmp_path / "report.html").read_text()
    # evaluation.confidence other than 0.95: every label says the level the intervals were made at
    summary = render(tmp_path, {**doc, "confidence": 0.9,
                                "cross_validation": {"folds": 5, "ci": "90% t-interval over fold means"}},
                     make_plots=False)
    assert summary.splitlines()[0] == "auc (90% t-interval over fold means) on the test split"
    assert "brackets: 90% CI (t-interval over fold means)" in (tmp_path / "report.html").read_text()


def test_headline_for_rate_grids_without_a_modality_and_for_subsets() -> None:
    rmfm = [_rec(m, f"rmfm@{r:g}", "Non0_acc_2", v - r / 4, v - r / 4 - 0.05, v - r / 4 + 0.05, 200, "rmfm", r)
            for m, v in (("base", 0.8), ("cider", 0.82)) for r in (0.0, 0.5, 1.0)]
    head = story.headline({"records": rmfm, "primary_metric": "Non0_acc_2"})
    assert head.text == ("Non0_acc_2 at rmfm rate 0: 0.82 [0.77, 0.87] (n = 200); at rate 1: 0.57 [0.52, 0.62] "
                         "(n = 200) — cider is highest at rate 1, but base (0.55) lies inside its CI.")
    assert head.group == "rmfm" and head.modality is None
    area = [_rec(m, "rmfm:AUILC", "Non0_acc_2", v, v - 0.01, v + 0.01, 200, "rmfm") for m, v in (("base", 0.9),
                                                                                                 ("cider", 0.6))]
    head = story.headline({"records": rmfm + area, "primary_metric": "Non0_acc_2"})
    assert head.text == ("Non0_acc_2 at rmfm rate 0: 0.80 [0.75, 0.85] (n = 200); at rate 1: 0.55 [0.50, 0.60] "
                         "(n = 200) — base, the best of 2 methods by AUILC over rates 0-1.")
    subsets = [_rec("a", s, "dice_mean", v, v - 0.1, v + 0.1, 40, "subsets") for s, v in
               (("flair", 0.5), ("t1", 0.3), ("flair+t1", 0.6))]
    head = story.headline({"records": subsets, "primary_metric": "dice_mean"})
    assert head.text == ("dice_mean, mean over 3 modality subsets: a 0.47. a per subset: 0.60 [0.50, 0.70] under "
                         "flair+t1 (n = 40) to 0.30 [0.20, 0.40] under t1 (n = 40).")
    # a second method: how far behind it is subset by subset, and the subsets left out
    subsets += [_rec("b", s, "dice_mean", v, v - 0.1, v + 0.1, 40, "subsets") for s, v in
                (("flair", 0.35), ("t1", 0.25), ("flair+t1", 0.55))]
    head = story.headline({"records": subsets, "primary_metric": "dice_mean",
                           "skipped_scenarios": [{"scenario": "t2", "group": "subsets"}]})
    assert head.text.startswith("dice_mean, mean over 3 modality subsets (1 more had no evaluable subject): a 0.47, "
                                "the highest of 2 methods; next b 0.38, inside a's CI on 2 of the 3 subsets. ")
    paired = {"records": [{"method": "a", "reference": "b", "scenario": s, "metric": "dice_mean", "mean": d,
                           "ci_low": d - 0.1 + (v == "better") * 0.09, "ci_high": d + 0.1, "verdict": v}
                          for s, d, v in (("flair", 0.15, "better"), ("t1", 0.05, "no clear difference"))]}
    head = story.headline({"records": subsets, "primary_metric": "dice_mean", "paired": paired})
    assert "next b 0.38; paired over seeds a is better on 1 of the 3 subsets. " in head.text
    mae = [_rec(m, "natural", "mae", v, v - 0.1, v + 0.1, 50) for m, v in (("a", 0.9), ("b", 0.7))]
    assert story.headline({"records": mae, "primary_metric": "mae"}).text.startswith(
        "MAE on natural: 0.70 [0.60, 0.80] (n = 50) — b, the best of 2 methods")  # lower is better


def test_scenario_availability_counts_natural_and_simulated_missingness() -> None:
    from types import SimpleNamespace

    import numpy as np

    from robustmm.missing.scenarios import RMFM, ModalityRate, Natural, Subset
    from robustmm.report.datainfo import merge_availability, scenario_availability

    n = 200
    pet = np.arange(n) % 10 >= 3  # 30 % without PET
    ds = SimpleNamespace(subject_ids=lambda: [f"s{i}" for i in range(n)],
                         natural_presence=lambda: {"mri": np.ones(n, bool), "pet": pet})
    test = np.arange(100, 200)
    data = SimpleNamespace(dataset=ds, splits=SimpleNamespace(as_dict=lambda: {"test": test}), modalities={})
    scenarios = [Natural(name="natural", group="natural"), Subset(name="mri+pet", group="subsets",
                                                                  modalities=("mri", "pet"))]
    scenarios += [ModalityRate(name=f"pet@{r}", group="pet", rate=r, modality="pet", rate_value=r)
                  for r in (0.0, 0.5, 1.0)]
    scenarios.append(RMFM(name="rmfm@0.3", group="rmfm", rate=0.3, rate_value=0.3))
    avail = scenario_availability(scenarios, data, "test", seed=0)
    natural = 1 - pet[test].mean()
    assert natural == pytest.approx(0.3)
    assert avail["natural"]["missing"]["pet"] == pytest.approx(natural) and avail["natural"]["n"] == 100
    assert avail["mri+pet"] == {"n": 70, "modality": None, "missing": {"mri": 0.0, "pet": 0.0},
                                "natural_missing": {"mri": 0.0, "pet": 0.0}}
    assert avail["pet@0.0"]["missing"]["pet"] == pytest.approx(natural)
    assert avail["pet@1.0"]["missing"]["pet"] == 1.0 and avail["pet@1.0"]["modality"] == "pet"
    half = avail["pet@0.5"]["missing"]["pet"]
    assert natural + 0.5 * (1 - natural) - 0.15 < half < natural + 0.5 * (1 - natural) + 0.15
    assert all(a["natural_missing"]["pet"] == pytest.approx(natural) for k, a in avail.items() if k != "mri+pet")
    assert avail["rmfm@0.3"]["feature_rate"] == 0.3 and avail["rmfm@0.3"]["missing"]["pet"] == pytest.approx(natural)
    merged = merge_availability([avail, {"natural": {**avail["natural"], "n": 300, "missing": {"mri": 0, "pet": 0.5},
                                                     "natural_missing": {"mri": 0, "pet": 0.5}}}])
    assert merged["natural"]["n"] == 400 and merged["natural"]["missing"]["pet"] == pytest.approx(0.45)


def test_multi_seed_document_paired_verdicts_and_headline_without_availability(tmp_path: Path) -> None:
    """The layout robustmm.evaluate.seeds writes: t-interval over seeds, paired records with verdicts."""
    records = [_rec(m, f"pet_missing@{r:g}", "auc", v - r / 10, v - r / 10 - 0.05, v - r / 10 + 0.05, 104,
                    "pet_missing", r) for m, v in (("base", 0.8), ("new", 0.82)) for r in (0.0, 0.5, 1.0)]
    paired = [{"method": "new", "reference": "base", "scenario": "pet_missing@1", "group": "pet_missing", "rate": 1.0,
               "metric": "auc", "mean": 0.02, "sd": 0.01, "ci_low": 0.005, "ci_high": 0.035, "n": 5, "agree": 5,
               "verdict": "better"}]
    doc = {"study": "seeds", "primary_metric": "auc", "synthetic": False, "records": records, "data": {},
           "seeds": {"seeds": [0, 1, 2, 3, 4], "ci": "95% t-interval over seed means"},
           "paired": {"reference": "base", "confidence": 0.95, "records": paired}}
    head = story.headline(doc)
    assert head.text == ("AUC with PET as collected: 0.82 [0.77, 0.87] (n = 104); with no PET: 0.72 [0.67, 0.77] "
                         "(n = 104) — new, the best of 2 methods with no PET; paired over seeds it is better than "
                         "base (difference +0.02 [+0.01, +0.04]).")
    # without the paired verdict the overlap of the two intervals is what the sentence can say
    unclear = {**doc, "paired": {**doc["paired"], "records": [{**paired[0], "verdict": "no clear difference"}]}}
    assert story.headline(unclear).text.endswith("new is highest with no PET, but base (0.70) lies inside its CI.")
    summary = render(tmp_path, doc, make_plots=False)
    assert summary.splitlines()[0] == "auc (95% t-interval over seed means) on the test split"
    page = (tmp_path / "report.html").read_text()
    assert "<td>pet_missing@1</td><td>new</td><td>0.720</td><td>0.700</td><td>+0.020 [+0.005, +0.035]</td>" in page
    assert "<td>better</td>" in page and "t-interval over seed means" in page


class _Accessible(HTMLParser):
    """Header cells without a scope, and the alt text of every image."""

    def __init__(self) -> None:
        super().__init__()
        self.unscoped: list[str] = []
        self.alts: list[str | None] = []
        self._th: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "th":
            self._th = [] if attrs.get("scope") not in ("col", "row") else None
        elif tag == "img":
            self.alts.append(attrs.get("alt"))

    def handle_data(self, data):
        if self._th is not None:
            self._th.append(data)

    def handle_endtag(self, tag):
        if tag == "th" and self._th is not None:
            self.unscoped.append("".join(self._th))
            self._th = None


def _small_doc(**extra) -> dict:
    records = [_rec(m, f"pet_missing@{r:g}", "auc", v - r / 10, v - r / 10 - 0.05, v - r / 10 + 0.05, 104,
                    "pet_missing", r) for m, v in (("base", 0.8), ("new", 0.82)) for r in (0.0, 0.5, 1.0)]
    records += [_rec(m, s, "auc", v, v - 0.05, v + 0.05, 60, "subsets") for m, v in (("base", 0.7), ("new", 0.75))
                for s in ("mri", "mri+pet")]
    data = {"samples": 10, "splits": {"train": 6, "test": 4}, "classes_by_split": {"train": {"a": 3, "b": 3},
                                                                                    "test": {"a": 2, "b": 2}}}
    return {"study": "s", "primary_metric": "auc", "synthetic": True, "records": records, "data": data,
            "selection": {"base": [{"stage": "base", "restored_epoch": 3, "epochs_run": 6, "optimizer_steps": 60,
                                    "reason": "lowest loss"}]}, **extra}


def test_every_header_cell_of_the_page_has_a_scope() -> None:
    """Screen readers announce a cell's column by its <th scope>; every table of the page has them."""
    single = build_page(_small_doc(), "plots/pet_missing_auc.png", ["plots/subsets_auc.png"], "")
    paired = [{"method": "new", "reference": "base", "scenario": "pet_missing@1", "metric": "auc", "mean": 0.02,
               "ci_low": 0.005, "ci_high": 0.035, "n": 5, "agree": 5, "verdict": "better"}]
    one = _small_doc()
    seeds = build_page({**one, "seeds": {"seeds": [0, 1, 2], "ci": "95% t-interval over seed means"},
                        "paired": {"reference": "base", "confidence": 0.95, "records": paired},
                        "selection": {f"seed_{s}": one["selection"] for s in (0, 1, 2)}}, None, [], "")
    for page in (single, seeds):
        parser = _Accessible()
        parser.feed(page)
        assert page.count("<th") > 10
        assert parser.unscoped == []


def test_figures_have_alt_text_that_says_what_they_show() -> None:
    page = build_page(_small_doc(), "plots/pet_missing_auc.png", ["plots/subsets_auc.png"], "")
    parser = _Accessible()
    parser.feed(page)
    headline, subsets = parser.alts
    assert headline.startswith("auc of each method against the fraction of test subjects without pet")
    assert subsets.startswith("auc of each method on every scenario of subsets")
    assert all("95% CI" in alt for alt in parser.alts)


def test_best_value_of_a_row_is_marked_by_a_symbol_not_only_by_bold() -> None:
    page = build_page(_small_doc(), None, [], "")
    assert "<td class='best'>0.720 [0.670, 0.770] ★</td>" in page
    assert "Best value per row in bold and marked ★" in page and "★ marks the best value of a row" in page


def test_the_page_says_how_many_runs_its_numbers_come_from() -> None:
    single = build_page({**_small_doc(), "seed": 7}, None, [], "")
    assert "one run (seed 7)" in re.search(r"<p class='sub'>(.*?)</p>", single).group(1)
    seeds = build_page(_small_doc(seeds={"seeds": [0, 1, 2], "ci": "95% t-interval over seed means"}, selection={}),
                       None, [], "")
    assert "mean over 3 seeds (0, 1, 2)" in re.search(r"<p class='sub'>(.*?)</p>", seeds).group(1)
    paired = {"reference": "base", "confidence": 0.95, "records": [
        {"method": "new", "reference": "base", "scenario": "pet_missing@1", "metric": "auc", "mean": 0.02,
         "ci_low": 0.005, "ci_high": 0.035, "n": 3, "agree": 3, "verdict": "better"}]}
    few = build_page(_small_doc(seeds={"seeds": [0, 1, 2]}, paired=paired, selection={}), None, [], "")
    assert "Only 3 seeds: below 5 the interval is wide" in few
    five = build_page(_small_doc(seeds={"seeds": [0, 1, 2, 3, 4]}, paired=paired, selection={}), None, [], "")
    assert "Only 5 seeds" not in five


def test_tables_of_method_sections_scroll_on_a_phone_and_have_scoped_headers() -> None:
    """A method's own section (any HTML it returns) gets the page's table treatment: without the
    scrolling wrapper a wide table with unbreakable cells widens the whole page on a phone."""
    section = ("<p>Validation per pattern</p><table><tr><th>pattern</th><th>auc base</th></tr>"
               "<tr><td>mri</td><td>0.7</td></tr><tr><th>mean over subsets</th><th>0.7</th></tr></table>")
    page = build_page(_small_doc(sections=[["Feature modulation: m", section]]), None, [], "")
    assert ("<h2>Feature modulation: m</h2><p>Validation per pattern</p><div class='scroll'><table><tr>"
            "<th scope='col'>pattern</th><th scope='col'>auc base</th></tr>") in page
    assert "<tr><th scope='row'>mean over subsets</th><th scope='row'>0.7</th></tr></table></div>" in page
    assert page.count("<table") == page.count("<div class='scroll'><table")


def test_a_run_records_its_seed_and_the_report_says_one_run(default_run: Path) -> None:
    doc = json.loads((default_run / "metrics.json").read_text())
    assert doc["seed"] == 0
    assert "on the test split, one run (seed 0);" in (default_run / "report.html").read_text()


def test_figures_tell_methods_apart_by_shape_and_name_their_intervals(tmp_path: Path, monkeypatch) -> None:
    """Colour-blind readers and grey-scale prints tell the methods apart by marker, line style or hatch;
    the axis says what the whiskers are."""
    from robustmm.report import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig) or path)
    methods = ("a", "b", "c")
    rates = [_rec(m, f"pet_missing@{r:g}", "auc", 0.8 - r / 10, 0.7 - r / 10, 0.9 - r / 10, 100, "pet_missing", r)
             for m in methods for r in (0.0, 0.5, 1.0)]
    subsets = [_rec(m, s, "auc", 0.7, 0.6, 0.8, 100, "subsets") for m in methods for s in ("mri", "pet")]
    plots.missing_curve(rates, "pet_missing", "auc", {}, None, tmp_path / "m.png", False)
    plots.rate_curves(rates, "pet_missing", "auc", tmp_path / "r.png", False, "90%")
    plots.subset_bars(subsets, "subsets", "auc", tmp_path / "s.png", False, "90%")
    curve, lines, bars = (fig.axes[0] for fig in drawn)
    assert lines.get_ylabel() == bars.get_ylabel() == "auc (90% CI)"  # what the whiskers and bands are
    drawn_lines = ([c.lines[0] for c in curve.containers if c.get_label() in methods],
                   [line for line in lines.get_lines() if line.get_label() in methods])
    for per_method in drawn_lines:
        assert len(per_method) == len(methods)
        assert len({(line.get_marker(), line.get_linestyle()) for line in per_method}) == len(methods)
    hatches = {c.get_label(): c.patches[0].get_hatch() for c in bars.containers if c.get_label() in methods}
    assert len(hatches) == len(methods) and len(set(hatches.values())) == len(methods)
    for fig in drawn:  # _save, which closes them, was replaced
        plots.plt.close(fig)


def test_a_flag_says_why_on_a_phone_and_to_a_screen_reader() -> None:
    """A title shows on hover only; the ⚠ mark is focusable (a tap) and shows its note then."""
    from robustmm.report.html import STYLE, scenario_table

    records = [_rec(m, "pet", "auc", v, v - 0.05, v + 0.05, 17) for m, v in (("a", 0.7), ("b", 0.6))]
    table = scenario_table(records, "auc", {}, {("a", "pet", "auc"): "n = 17 < 30"})
    assert ("<span class='flag' tabindex='0' role='img' aria-label='check: n = 17 &lt; 30' "
            "title='n = 17 &lt; 30'>⚠</span>") in table
    assert ".flag:focus::after{content:attr(title)" in STYLE


def test_the_auilc_row_of_a_feature_or_random_modality_grid_says_what_is_missing() -> None:
    # the total cell was blank without a single modality to name (rmfm drops features, random_modality all of them)
    from robustmm.report.html import scenario_table

    def at(rate, feature_rate=None, missing=0.0):
        a = {"n": 200, "modality": None, "missing": {"text": missing, "audio": missing / 2},
             "natural_missing": {"text": 0.0, "audio": 0.0}}
        return {**a, "feature_rate": feature_rate} if feature_rate is not None else a

    for group, grid in (("rmfm", {r: at(r, feature_rate=r) for r in (0.0, 1.0)}),
                        ("random_modality", {r: at(r, missing=r * 0.6) for r in (0.0, 1.0)})):
        records = [_rec("a", f"{group}@{r:g}", "acc", 0.7, 0.6, 0.8, 200, group, r) for r in grid]
        records.append(_rec("a", f"{group}:AUILC", "acc", 0.7, 0.6, 0.8, 200, group))
        availability = {f"{group}@{r:g}": a for r, a in grid.items()}
        row = scenario_table(records, "acc", availability, {}).split(f"{group}:AUILC")[1].split("</tr>")[0]
        expected = "features 0%–100%" if group == "rmfm" else "text 0%–60%, audio 0%–30%"
        assert f"<td>{expected}</td><td>none</td>" in row

"""TCGA loaders: PORPOISE tables (real BLCA file and synthetic) and the DisPro layout (synthetic)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustmm.data.base import is_synthetic
from robustmm.data.batch import collate
from robustmm.data.synth.tcga import write_synthetic_dispro, write_synthetic_porpoise
from robustmm.data.tcga import DisProDataset, PorpoiseDataset, load_porpoise_table, prepare_tcga
from robustmm.errors import DataError
from robustmm.metrics.survival import concordance

# ------------------------------------------------------------------------------------------------
# PORPOISE


@pytest.mark.shared_data
def test_real_blca_counts(shared_data: Path) -> None:
    path = shared_data / "tcga_porpoise" / "tcga_blca_all_clean.csv.zip"
    table = load_porpoise_table(path)
    assert len(table) == 373 and table["case_id"].is_unique
    assert int((table["censorship"] == 0).sum()) == 169
    ds = PorpoiseDataset(shared_data / "tcga_porpoise", cohort="blca")
    assert len(ds) == 373
    assert ds.column_counts == {"rnaseq": 1554, "cnv": 256, "mut": 371}
    assert {k: v.shape[0] for k, v in ds.modalities.items()} == {"clinical": 3, "rnaseq": 1554, "cnv": 256, "mut": 371}
    assert ds.feature_names["clinical"] == ["is_female", "age", "oncotree_code=BLCA"]
    assert int(ds.events.sum()) == 169
    assert len(ds.slide_ids) == 373 and sum(map(len, ds.slide_ids.values())) == 437
    ds.fit(np.arange(0, 373, 2))
    sample = ds[1]
    assert all(sample["present"].values()) and np.isfinite(sample["inputs"]["rnaseq"].numpy()).all()


@pytest.fixture
def porpoise_file(tmp_path: Path) -> Path:
    return write_synthetic_porpoise(tmp_path / "tcga_syn_all_clean.csv.zip", n_patients=40, seed=1, age_missing=0.2)


def test_synthetic_porpoise_roundtrip(porpoise_file: Path) -> None:
    assert is_synthetic(porpoise_file)
    slides = load_porpoise_table(porpoise_file, per_slide=True)
    table = load_porpoise_table(porpoise_file)
    assert len(table) == 40 and len(slides) > 40 and "Unnamed: 0" not in table.columns
    ds = PorpoiseDataset(porpoise_file, modalities=("clinical", "rnaseq"))
    assert list(ds.modalities) == ["clinical", "rnaseq"]
    assert ds.feature_names["clinical"] == ["is_female", "age", "oncotree_code=SYN", "oncotree_code=SYNB"]
    assert ds.modalities["rnaseq"].shape == (40,)
    missing_age = np.flatnonzero(np.isnan(table["age"].to_numpy()))
    assert missing_age.size > 0
    with pytest.raises(RuntimeError, match="fit_imputer"):
        ds[int(missing_age[0])]
    ds.fit(np.arange(30))
    s = ds[int(missing_age[0])]
    assert s["valid"]["clinical"].tolist()[:2] == [True, False]
    assert s["target"]["event"].item() == 1 - table["censorship"].iloc[missing_age[0]]
    # the planted risk is visible: the first rnaseq gene orders the patients
    c = concordance(ds.times, ds.events, ds._raw["rnaseq"][:, 0])
    assert c > 0.6
    with_site = PorpoiseDataset(porpoise_file, modalities=("clinical",), clinical_site=True)
    assert any(f.startswith("site=") for f in with_site.feature_names["clinical"])


def test_porpoise_bad_inputs(tmp_path: Path, porpoise_file: Path) -> None:
    table = load_porpoise_table(porpoise_file, per_slide=True)
    bad = table.drop(columns="censorship")
    bad.to_csv(tmp_path / "nocens.csv", index=False)
    with pytest.raises(DataError, match="censorship"):
        load_porpoise_table(tmp_path / "nocens.csv")
    neg = table.copy()
    neg.loc[neg["case_id"] == "TCGA-SY-0003", "survival_months"] = -2.0
    neg.to_csv(tmp_path / "neg.csv", index=False)
    with pytest.raises(DataError, match="TCGA-SY-0003"):
        load_porpoise_table(tmp_path / "neg.csv")
    with pytest.raises(DataError, match="not found"):
        load_porpoise_table(tmp_path / "nothing.csv.zip")
    with pytest.raises(DataError, match="cohort"):
        load_porpoise_table(porpoise_file, cohort="luad")
    with pytest.raises(DataError, match="unknown PORPOISE modality"):
        PorpoiseDataset(porpoise_file, modalities=("wsi",))


def test_a_folder_without_a_cohort_is_refused_naming_the_cohorts_it_holds(porpoise_file: Path) -> None:
    # the advice named cohort=blca for a folder that holds only tcga_syn_*, as robustmm data synth writes it
    msg = str(pytest.raises(DataError, load_porpoise_table, porpoise_file.parent).value)
    assert "data check --option cohort=syn); cohorts there: ['syn']" in msg
    assert load_porpoise_table(porpoise_file.parent, cohort="syn")["case_id"].is_unique


def test_a_study_whose_tcga_table_is_not_there_names_the_command_that_puts_it_there(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    # the error said only "set data.root ... or give data.synthetic"; the study's own data comes from data prepare
    from robustmm.config import load_study
    from robustmm.runguard import check_before_data

    monkeypatch.chdir(tmp_path)
    cfg = load_study(Path(__file__).resolve().parents[1] / "studies" / "tcga_blca_survival.yaml")
    msg = str(pytest.raises(DataError, check_before_data, cfg).value)
    assert msg.startswith("data root datasets/tcga_blca does not exist; set data.root") and msg.endswith(
        "; robustmm data prepare tcga --cohort COHORT --from FILE checks a downloaded PORPOISE table and copies it "
        "to datasets/tcga_<cohort>/")


def test_prepare_tcga(tmp_path: Path, porpoise_file: Path) -> None:
    datasets = tmp_path / "datasets"
    report = prepare_tcga("syn", porpoise_file, datasets)
    dest = datasets / "tcga_syn" / porpoise_file.name
    assert report["status"] == "copied" and Path(report["path"]) == dest and dest.read_bytes() == porpoise_file.read_bytes()
    assert report["patients"] == 40 and report["columns"] == {"rnaseq": 40, "cnv": 12, "mut": 10}
    assert report["deaths"] + report["censored"] == 40
    assert json.loads((datasets / "tcga_syn" / "PREPARED.json").read_text())["sha256"] == report["sha256"]
    assert prepare_tcga("syn", porpoise_file, datasets)["status"] == "unchanged"
    other = write_synthetic_porpoise(tmp_path / "o" / porpoise_file.name, n_patients=30, seed=5)
    with pytest.raises(DataError, match="refusing to overwrite"):
        prepare_tcga("syn", other, datasets)
    assert dest.read_bytes() == porpoise_file.read_bytes()
    with pytest.raises(DataError, match="cohort"):
        prepare_tcga("luad", porpoise_file, datasets)
    assert not list((datasets / "tcga_syn").glob(".tmp_*"))


def test_prepare_tcga_keeps_only_the_marker_that_describes_the_file(tmp_path: Path) -> None:
    src = write_synthetic_porpoise(tmp_path / "dl" / "tcga_syn_all_clean.csv.zip", n_patients=30, seed=1)
    marker = json.loads((src.parent / "SYNTHETIC_DATA.json").read_text())
    assert prepare_tcga("syn", src, tmp_path / "a")["synthetic"]
    # the same folder's marker describing another file says nothing about this one
    (src.parent / "SYNTHETIC_DATA.json").write_text(json.dumps({**marker, "file": "tcga_other_all_clean.csv.zip"}))
    report = prepare_tcga("syn", src, tmp_path / "b")
    assert not report["synthetic"] and not (tmp_path / "b" / "tcga_syn" / "SYNTHETIC_DATA.json").exists()


# ------------------------------------------------------------------------------------------------
# DisPro layout


@pytest.fixture(scope="module")
def dispro_root(tmp_path_factory) -> Path:
    return write_synthetic_dispro(tmp_path_factory.mktemp("dispro") / "cohort", n_patients=60, seed=3,
                                  wsi_missing=0.2, omics_missing=0.15)


def test_dispro_writer_format(dispro_root: Path) -> None:
    splits = pd.read_csv(dispro_root / "splits.csv", keep_default_na=False)
    assert list(splits.columns) == ["Study", "ID", "Event", "Status", "WSI", "Omics"] + [f"Fold {k}" for k in range(5)]
    assert ((splits["WSI"] == "") & (splits["Omics"] == "")).sum() == 0  # nobody misses both
    assert (splits["WSI"] == "").sum() == 12 and (splits["Omics"] == "").sum() == 9
    assert splits["WSI"].str.contains(";").any()  # some patients have two slides
    folds = splits[[f"Fold {k}" for k in range(5)]]
    assert ((folds == "val").sum(axis=1) == 1).all()  # each patient is held out exactly once
    truth = pd.read_csv(dispro_root / "truth.csv")
    assert concordance(splits["Event"], splits["Status"], truth["risk"]) > 0.7
    assert is_synthetic(dispro_root)


def test_dispro_samples(dispro_root: Path) -> None:
    ds = DisProDataset(dispro_root, fold=1, split="train", max_patches=200)
    splits = pd.read_csv(dispro_root / "splits.csv", keep_default_na=False)
    assert len(ds) == int((splits["Fold 1"] == "train").sum())
    assert ds.unmeasured_genes == ["UNMEASURED1", "UNMEASURED2"]
    p, g_max = ds.modalities["omics"].shape
    assert p == 8 and ds.gene_mask.sum().item() == sum(ds.pathway_sizes) and g_max == max(ds.pathway_sizes)
    assert ds.modalities["wsi"].shape == (200, 32) and ds.modalities["wsi"].kind == "bag"

    row = splits.set_index("ID")
    for i in range(len(ds)):
        s = ds[i]
        pid = s["meta"]["subject"]
        assert s["present"]["wsi"] == (row.loc[pid, "WSI"] != "")
        assert s["present"]["omics"] == (row.loc[pid, "Omics"] != "")
        assert s["target"]["time"].item() == pytest.approx(row.loc[pid, "Event"])
        assert s["target"]["event"].item() == row.loc[pid, "Status"]
        if s["present"]["wsi"]:  # the bag is the slides concatenated in the listed order
            parts = [torch.load(dispro_root / "wsi" / n) for n in row.loc[pid, "WSI"].split(";")]
            bag = torch.cat(parts)
            n = bag.shape[0]
            assert s["meta"]["n_patches"] == n and s["valid"]["wsi"].sum().item() == n
            assert torch.equal(s["inputs"]["wsi"][:n], bag) and not s["inputs"]["wsi"][n:].any()
        else:
            assert not s["valid"]["wsi"].any() and not s["inputs"]["wsi"].any()
        if s["present"]["omics"]:
            genes = pd.read_csv(dispro_root / "omics" / f"{pid}.csv").set_index("Gene")["Value"]
            first = ds.layout_genes[: ds.pathway_sizes[0]]
            assert s["inputs"]["omics"][0, : len(first)].tolist() == pytest.approx(genes[first].tolist(), abs=1e-5)
            assert s["valid"]["omics"].all() and not s["inputs"]["omics"][~ds.gene_mask].any()
        else:
            assert not s["valid"]["omics"].any()
    batch = collate([ds[i] for i in range(6)])
    assert batch.inputs["omics"].shape == (6, p, g_max) and batch.valid["wsi"].shape == (6, 200)
    assert batch.target["bin"].dtype == torch.long


def test_dispro_folds_and_bins(dispro_root: Path) -> None:
    held_out = []
    for fold in range(5):
        train = DisProDataset(dispro_root, fold, "train", modalities=("omics",))
        test = DisProDataset(dispro_root, fold, "test", modalities=("omics",))  # 'test' reads DisPro's 'val'
        assert not set(train.subject_ids()) & set(test.subject_ids())
        assert len(train) + len(test) == 60
        held_out += test.subject_ids()
        uncensored = train.times[train.events == 1]
        assert train.bin_cuts[1:-1].tolist() == pytest.approx(np.quantile(uncensored, [0.25, 0.5, 0.75]).tolist())
        assert np.array_equal(train.bin_cuts, test.bin_cuts)  # test bins come from the training patients
    assert sorted(held_out) == sorted(f"SYN-{i:04d}" for i in range(60))
    full = DisProDataset(dispro_root, 0, "all", modalities=("omics",))
    parts = full.predefined_splits()
    assert sorted(parts) == ["test", "train", "val"]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(60))
    assert len(parts["test"]) == 12 and len(parts["val"]) > 0


def test_dispro_patch_subsampling(dispro_root: Path) -> None:
    ev = DisProDataset(dispro_root, 0, "train", max_patches=10, modalities=("wsi",), train=False)
    idx = next(i for i in range(len(ev)) if ev._present["wsi"][i])
    full = torch.cat([torch.load(f) for f in ev._slides[idx]])
    a, b = ev[idx], ev[idx]
    assert torch.equal(a["inputs"]["wsi"], b["inputs"]["wsi"]) and a["valid"]["wsi"].all()
    spaced = np.linspace(0, full.shape[0] - 1, 10).round().astype(int)
    assert torch.equal(a["inputs"]["wsi"], full[spaced])
    tr = DisProDataset(dispro_root, 0, "train", max_patches=10, modalities=("wsi",), train=True, seed=7)
    x0 = tr[idx]["inputs"]["wsi"]
    assert torch.equal(x0, tr[idx]["inputs"]["wsi"])  # deterministic for a given seed and epoch
    rows = {tuple(r.tolist()) for r in full}
    assert all(tuple(r.tolist()) in rows for r in x0)  # real patches only
    tr.set_epoch(1)
    assert not torch.equal(x0, tr[idx]["inputs"]["wsi"])
    other = DisProDataset(dispro_root, 0, "train", max_patches=10, modalities=("wsi",), train=True, seed=8)
    assert not torch.equal(x0, other[idx]["inputs"]["wsi"])
    default = DisProDataset(dispro_root, 0, "train", max_patches=10, modalities=("wsi",), seed=7)
    assert default.train and torch.equal(default[idx]["inputs"]["wsi"], x0)  # the train split samples randomly
    assert not DisProDataset(dispro_root, 0, "val", max_patches=10, modalities=("wsi",)).train


def _copy(root: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(root, dest)
    return dest


def _edit_splits(root: Path, fn) -> None:
    splits = pd.read_csv(root / "splits.csv", keep_default_na=False)
    fn(splits)
    splits.to_csv(root / "splits.csv", index=False)


def test_dispro_missing_omics_file(dispro_root: Path, tmp_path: Path) -> None:
    root = _copy(dispro_root, tmp_path)
    splits = pd.read_csv(root / "splits.csv", keep_default_na=False)
    pid = splits.loc[(splits["Omics"] != "") & (splits["Fold 0"] == "train"), "ID"].iloc[3]
    (root / "omics" / f"{pid}.csv").unlink()
    with pytest.raises(DataError) as err:
        DisProDataset(root, 0, "train")
    assert pid in str(err.value) and f"{pid}.csv" in str(err.value)
    ds = DisProDataset(root, 0, "train", allow_missing_omics=True)
    assert ds[ds.subject_ids().index(pid)]["present"]["omics"] is False


def test_dispro_patients_censored_at_time_zero_are_noted(dispro_root: Path, tmp_path: Path) -> None:
    root = _copy(dispro_root, tmp_path)
    assert not any("censored at" in n for n in DisProDataset(root, 0, "all").report.notes)
    splits = pd.read_csv(root / "splits.csv", keep_default_na=False)
    pid = splits.loc[splits["Status"] == 0, "ID"].iloc[0]
    _edit_splits(root, lambda s: s.__setitem__("Event", s["Event"].where(s["ID"] != pid, 0.0)))
    [note] = [n for n in DisProDataset(root, 0, "all").report.notes if "censored at" in n]
    assert note.startswith(f"{root / 'splits.csv'}: 1 patient censored at Event 0 ({pid});")


def test_dispro_missing_slide_file(dispro_root: Path, tmp_path: Path) -> None:
    root = _copy(dispro_root, tmp_path)
    splits = pd.read_csv(root / "splits.csv", keep_default_na=False)
    pid, cell = splits.loc[(splits["WSI"] != "") & (splits["Fold 0"] == "val"), ["ID", "WSI"]].iloc[0]
    for name in cell.split(";"):
        (root / "wsi" / name).unlink()
    with pytest.raises(DataError, match=pid):
        DisProDataset(root, 0, "val")
    ds = DisProDataset(root, 0, "val", allow_missing_wsi=True)
    assert ds[ds.subject_ids().index(pid)]["present"]["wsi"] is False


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.__setitem__("Event", s["Event"].where(s.index != 4, np.nan)), "SYN-0004"),
    (lambda s: s.__setitem__("Event", s["Event"].where(s.index != 7, -1.0)), "negative"),
    (lambda s: s.__setitem__("Status", 0), "censored"),
])
def test_dispro_bad_survival(dispro_root: Path, tmp_path: Path, edit, message) -> None:
    root = _copy(dispro_root, tmp_path)
    _edit_splits(root, edit)
    with pytest.raises(DataError, match=message) as err:
        DisProDataset(root, 0, "train", modalities=("omics",))
    assert "splits.csv" in str(err.value)


def test_dispro_all_censored_fold(dispro_root: Path, tmp_path: Path) -> None:
    root = _copy(dispro_root, tmp_path)
    _edit_splits(root, lambda s: s.__setitem__("Status", s["Status"].where(s["Fold 2"] != "val", 0)))
    with pytest.raises(DataError, match="fold 2"):
        DisProDataset(root, 2, "val", modalities=("omics",))
    assert len(DisProDataset(root, 1, "val", modalities=("omics",))) == 12  # other folds still load


def test_dispro_configuration_errors(dispro_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Fold 9"):
        DisProDataset(dispro_root, 9, "train")
    with pytest.raises(DataError, match="split 'dev'"):
        DisProDataset(dispro_root, 0, "dev")
    root = _copy(dispro_root, tmp_path)
    splits = pd.read_csv(root / "splits.csv", keep_default_na=False)
    pid = splits.loc[(splits["Omics"] != "") & (splits["Fold 0"] == "train"), "ID"].iloc[0]
    omics = pd.read_csv(root / "omics" / f"{pid}.csv")
    omics.loc[omics["Gene"] == "GENE0000", "Value"] = np.nan
    omics.to_csv(root / "omics" / f"{pid}.csv", index=False)
    ds = DisProDataset(root, 0, "train", modalities=("omics",))
    with pytest.raises(DataError, match="GENE0000"):
        ds[ds.subject_ids().index(pid)]
    # censorship coding and renamed columns are configurable
    _edit_splits(root, lambda s: (s.__setitem__("Status", 1 - s["Status"]), s.rename(columns={"ID": "case"}, inplace=True)))
    flipped = DisProDataset(root, 0, "train", modalities=("omics",), id_column="case", event_column=None,
                            censorship_column="Status")
    assert flipped.events.sum() == DisProDataset(dispro_root, 0, "train", modalities=("omics",)).events.sum()


# ------------------------------------------------------------------------------------------------
# what the loader did: imputed cells, signature genes that match nothing, every bag read by the check


def _check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    from robustmm.cli import main

    rc = main(["data", "check", *args, "--quiet"])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def _signatures(path: Path, columns: dict[str, list[str]]) -> Path:
    longest = max(map(len, columns.values()))
    pd.DataFrame({k: v + [None] * (longest - len(v)) for k, v in columns.items()}).to_csv(path, index=False)
    return path


def test_imputed_cells_reach_data_check_and_the_run_report(porpoise_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from robustmm.config.schema import GenericDataConfig, SplitConfig
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset
    from robustmm.report.html import data_section
    from robustmm.study import data_report

    n_age = int(load_porpoise_table(porpoise_file)["age"].isna().sum())
    assert n_age > 0
    rc, out = _check(capsys, "tcga_porpoise", str(porpoise_file))
    cells = "1 cell" if n_age == 1 else f"{n_age} cells"
    assert rc == 0 and f"imputed: {cells} of age (filled with the training-split mean)" in out
    ds = build_dataset(GenericDataConfig(kind="tcga_porpoise", root=porpoise_file))
    loader = data_report(DataModule(ds, SplitConfig(), seed=0))["loader"]
    assert loader["imputed_cells"] == {"age": n_age}
    assert "<td>age</td><td>" + str(n_age) in data_section({"loader": loader})
    # generic tables too; a column with no training value says it is filled with 0
    table = pd.DataFrame({"pid": [f"p{i}" for i in range(12)], "a": [np.nan, 1.0] * 6, "b": np.arange(12.0),
                          "t": np.arange(1.0, 13.0), "e": [1, 0, 1] * 4})
    table.loc[[3, 5], "b"] = np.nan
    (tmp_path / "real").mkdir()  # away from the synthetic table's marker
    table.to_csv(tmp_path / "real" / "t.csv", index=False)
    rc, out = _check(capsys, "table", str(tmp_path / "real" / "t.csv"), "--option", "id_column=pid",
                     "--option", "modalities={x: {columns: [a, b]}}",
                     "--option", "target={kind: survival, time: t, event: e}")
    assert rc == 0 and "imputed: 6 cells of a" in out and "imputed: 2 cells of b" in out
    tds = build_dataset(GenericDataConfig(kind="table", root=tmp_path / "real" / "t.csv", options={
        "id_column": "pid", "modalities": {"x": {"columns": ["a", "b"]}},
        "target": {"kind": "survival", "time": "t", "event": "e"}}))
    tds.fit(np.arange(0, 12, 2))  # 'a' is empty on every training row
    assert tds.report.imputed == {"a": 6, "b": 2}
    assert any("'a'" not in n and "column a has no observed value in the training split; its missing cells" in n
               for n in tds.report.notes)
    tds.fit(np.arange(12))
    assert not any("training split" in n for n in tds.report.notes)  # a refit replaces the note


@pytest.mark.shared_data
def test_real_luad_missing_ages_are_reported(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out = _check(capsys, "tcga_porpoise", str(shared_data / "tcga_porpoise" / "tcga_luad_all_clean.csv.zip"))
    assert rc == 0 and "imputed: 10 cells of age" in out


def test_unmatched_signature_genes_are_reported_in_check_log_and_run(porpoise_file: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    import json as json_

    from robustmm.config.loader import validate
    from robustmm.config.schema import StudyConfig
    from robustmm.study import run_study

    sig = _signatures(tmp_path / "sig.csv", {"PW_OK": ["G000", "G001", "FOO1"], "PW_NONE": ["BAR2", "BAZ3"]})
    with caplog.at_level("WARNING", logger="robustmm"):
        rc, out = _check(capsys, "tcga_porpoise", str(porpoise_file), "--option", f"signatures={sig}")
    assert rc == 0
    genes = "3 of 5 signature genes match nothing in the omics columns (rnaseq, cnv, mut) and are left out " \
            "(e.g. FOO1, BAR2, BAZ3)"
    dropped = "1 pathway has no gene in the omics columns (rnaseq, cnv, mut) and is dropped: PW_NONE"
    assert f"note: data.options.signatures {sig}: {genes}" in out and dropped in out
    assert genes in caplog.text and dropped in caplog.text
    cfg = validate(StudyConfig, {
        "name": "t", "output_dir": str(tmp_path / "runs"),
        "data": {"kind": "tcga_porpoise", "root": str(porpoise_file),
                 "options": {"modalities": ["clinical", "rnaseq"], "signatures": str(sig)}},
        "model": {"embed_dim": 4, "trunk_hidden": 4, "table": {"hidden": [4]}},
        "training": {"epochs": 1, "batch_size": 16, "device": "cpu", "early_stopping": {"min_epochs": 1}},
        "methods": [{"name": "dropout_baseline"}], "report": {"plots": False},
        "evaluation": {"bootstrap": 0, "scenarios": [{"kind": "natural"}]}}, source="test")
    run = run_study(cfg, progress=False).run_dir
    notes = json_.loads((run / "metrics.json").read_text())["data"]["loader"]["notes"]
    assert any("PW_NONE" in n for n in notes) and any("FOO1, BAR2" in n for n in notes)
    assert "PW_NONE" in (run / "report.html").read_text() and "PW_NONE" in (run / "log.txt").read_text()


def test_dispro_pathway_of_unknown_genes_is_reported(dispro_root: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    root = _copy(dispro_root, tmp_path)
    sig = pd.read_csv(root / "signatures.csv")
    _signatures(root / "signatures.csv", {**{c: sig[c].dropna().tolist() for c in sig}, "PW_FOO": ["FOO1", "BAR2"]})
    rc, out = _check(capsys, "dispro", str(root))
    assert rc == 0 and "1 pathway has no gene in" in out and "dropped: PW_FOO" in out
    assert "4 of " in out and "(e.g. UNMEASURED1, UNMEASURED2, FOO1, BAR2)" in out
    assert DisProDataset(root, 0, "all", modalities=("omics",)).report.notes == [
        line[len("note: "):] for line in out.splitlines() if line.startswith("note: ")]


class _RunsCode:
    """Unpickling this creates ``path`` (stands for any command a crafted file could run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _last_slide(root: Path) -> Path:
    return sorted((root / "wsi").glob("*.pt"))[-1]


def test_dispro_check_reads_every_bag(dispro_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "owned"
    evil = _copy(dispro_root, tmp_path / "evil")
    torch.save({"x": _RunsCode(marker)}, _last_slide(evil))
    rc, out = _check(capsys, "dispro", str(evil))
    assert rc == 2 and "refused" in out and _last_slide(evil).name in out and "weights_only" not in out
    assert not marker.exists() and "Traceback" not in out
    narrow = _copy(dispro_root, tmp_path / "narrow")
    torch.save(torch.zeros(5, 16), _last_slide(narrow))
    rc, out = _check(capsys, "dispro", str(narrow))
    assert rc == 2 and "16 features per patch, expected 32" in out


def test_zero_wsi_features_are_refused_at_synth_and_load_time(dispro_root: Path, tmp_path: Path) -> None:
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import build_dataset
    from robustmm.errors import ConfigError

    with pytest.raises(ValueError, match="wsi_feat_dim"):
        write_synthetic_dispro(tmp_path / "zero", n_patients=10, n_folds=2, wsi_feat_dim=0, oracle=False)
    with pytest.raises(ConfigError, match="data.synthetic.patches.*1 <= min <= max"):
        build_dataset(GenericDataConfig(kind="dispro", root=tmp_path / "syn", synthetic={"patches": [5, 2]}))
    assert not (tmp_path / "syn").exists()
    root = _copy(dispro_root, tmp_path / "empty")
    for f in (root / "wsi").glob("*.pt"):
        torch.save(torch.zeros(7, 0), f)
    with pytest.raises(DataError, match="0 features per patch"):
        DisProDataset(root, 0, "all")


def test_synthetic_porpoise_files_get_the_users_umask(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = write_synthetic_porpoise(tmp_path / "a" / "tcga_syn_all_clean.csv.zip", n_patients=20, oracle=False)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert stat.S_IMODE((path.parent / "SYNTHETIC_DATA.json").stat().st_mode) == 0o644
        os.umask(0o007)
        path = write_synthetic_porpoise(tmp_path / "b" / "tcga_syn_all_clean.csv.zip", n_patients=20, oracle=False)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    finally:
        os.umask(old)


def test_porpoise_cohort_errors_name_the_study_key_and_the_check_option(tmp_path: Path) -> None:
    from robustmm.data.tcga import _find_porpoise_file

    (tmp_path / "tcga_blca_all_clean.csv.zip").write_bytes(b"")
    with pytest.raises(DataError, match=r"data\.options\.cohort: blca; with data check --option cohort=blca"):
        _find_porpoise_file(tmp_path, None)
    with pytest.raises(DataError, match=r"says cohort 'blca' but data\.options\.cohort is 'luad'; set the cohort"):
        _find_porpoise_file(tmp_path / "tcga_blca_all_clean.csv.zip", "luad")


def test_data_check_with_a_study_runs_its_methods_data_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    """`data check --study` reports what the study's methods find in the data (here DisPro's
    method-level signatures), as the run would before its first method trains."""
    import yaml

    from robustmm.config import load_study
    from robustmm.data.registry import build_dataset

    monkeypatch.chdir(tmp_path)
    _signatures(tmp_path / "rna.csv", {"kept": ["G000", "NOPE1", "G001"], "gone": ["NOPE2", "NOPE1"]})
    study = {"name": "dc", "data": {"kind": "tcga_porpoise", "root": "syn", "synthetic": {"patients": 40, "seed": 4},
                                    "options": {"clip": 5, "cohort": "syn"}},
             "split": {"folds": 4, "fold": 0},
             "methods": [{"name": "dispro", "dim": 16, "slots": 4, "context_length": 2, "fusion_layers": 1, "signatures": {"rnaseq": "rna.csv"}}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    build_dataset(load_study(tmp_path / "s.yaml").data)  # writes the synthetic cohort
    rc, out = _check(capsys, "tcga_porpoise", "syn", "--study", "s.yaml")
    assert rc == 0
    assert ("note: method 'dispro' option signatures.rnaseq (rna.csv): 2 of 4 signature genes match nothing in "
            "the columns of rnaseq and are left out (e.g. NOPE1, NOPE2)") in out
    assert "1 pathway has no gene in the columns of rnaseq and is dropped: gone" in out
    _signatures(tmp_path / "rna.csv", {"p": ["XYZ1"]})
    rc, out = _check(capsys, "tcga_porpoise", "syn", "--study", "s.yaml")
    assert rc == 2 and "no gene of rna.csv matches a column of rnaseq" in out


def test_non_finite_patch_features_are_refused_by_check_and_loader(dispro_root: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """A slide whose feature extractor wrote NaN or inf reached the model as it was."""
    root = _copy(dispro_root, tmp_path / "nan")
    slide = _last_slide(root)
    bag = torch.load(slide, weights_only=True)
    bag[1, 2], bag[3, 0] = float("nan"), float("-inf")
    torch.save(bag, slide)
    rc, out = _check(capsys, "dispro", str(root))
    assert rc == 2 and f"{slide.name}" in out and "2 patch feature values are NaN or infinite" in out
    ds = DisProDataset(root, 0, "all")
    owner = next(i for i, files in enumerate(ds._slides) if slide in files)
    with pytest.raises(DataError, match=rf"{slide.name} \(patient {ds.subject_ids()[owner]}\).*NaN or infinite"):
        ds[owner]


def test_an_omics_gene_repeated_with_other_values_is_refused(dispro_root: Path, tmp_path: Path) -> None:
    """A patient's omics CSV listing a gene twice used the first row, silently, whatever the second said."""
    root = _copy(dispro_root, tmp_path)
    ds = DisProDataset(root, 0, "all")
    i = next(k for k in range(len(ds)) if ds._omics_files[k] is not None)
    pid, file, gene = ds.subject_ids()[i], ds._omics_files[i], ds.layout_genes[0]
    expected = ds[i]["inputs"]["omics"]
    rows = pd.read_csv(file)
    pd.concat([rows, rows[rows["Gene"] == gene]]).to_csv(file, index=False)
    assert torch.equal(DisProDataset(root, 0, "all")[i]["inputs"]["omics"], expected)  # identical repeat: read once
    other = pd.concat([rows, rows[rows["Gene"] == gene].assign(Value=123.0)])
    other.to_csv(file, index=False)
    with pytest.raises(DataError, match=rf"{file.name} \(patient {pid}\): gene {gene} is listed more than once with "
                                        r"different values"):
        DisProDataset(root, 0, "all")[i]


def test_a_patient_without_wsi_and_omics_is_refused_by_data_check(dispro_root: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    root = _copy(dispro_root, tmp_path)
    pid = pd.read_csv(root / "splits.csv", keep_default_na=False)["ID"].iloc[2]

    def empty_both(splits: pd.DataFrame) -> None:
        splits.loc[splits["ID"] == pid, ["WSI", "Omics"]] = ""

    _edit_splits(root, empty_both)
    rc, out = _check(capsys, "dispro", str(root))
    assert rc == 2 and f"1 subject has no modality at all ({pid}: every one of ['omics', 'wsi']" in out


def test_a_folder_without_the_cohorts_table_fails_before_the_run_folder(tmp_path: Path, porpoise_file: Path) -> None:
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import check_data_root

    # the run made its folder first, then the loader found no table of the cohort
    data = GenericDataConfig(kind="tcga_porpoise", root=porpoise_file.parent, options={"cohort": "blca"})
    with pytest.raises(DataError, match=r"expected one file tcga_blca_\*\.csv\[\.zip\] for cohort 'blca', found \[\]"):
        check_data_root(data)
    check_data_root(GenericDataConfig(kind="tcga_porpoise", root=porpoise_file.parent, options={"cohort": "syn"}))
    # data.synthetic writes the table into an empty folder
    (tmp_path / "empty").mkdir()
    check_data_root(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "empty", synthetic={}))


def test_a_dispro_folder_without_its_splits_file_fails_before_the_run_folder(tmp_path: Path, dispro_root: Path) -> None:
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import check_data_root

    (tmp_path / "notes.txt").write_text("not a cohort")
    with pytest.raises(DataError, match=f"{tmp_path / 'splits.csv'}: splits file not found"):
        check_data_root(GenericDataConfig(kind="dispro", root=tmp_path, options={"fold": 0}))
    check_data_root(GenericDataConfig(kind="dispro", root=dispro_root, options={"fold": 0}))

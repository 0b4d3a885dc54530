"""ADNI-style loader: label derivation, natural PET missingness, and every bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from robustmm.config.schema import AdniDataConfig, SplitConfig
from robustmm.data.adni import AdniDataset
from robustmm.data.datamodule import DataModule
from robustmm.errors import DataError

SHAPE = (8, 8, 8)


def cfg(root: Path, **kw) -> AdniDataConfig:
    return AdniDataConfig(root=root, volume_shape=SHAPE, cache=False, **kw)


def visit(ptid, m, dx, **extra):
    row = {"PTID": ptid, "VISCODE": "bl" if m == 0 else f"m{m:02d}", "M": m, "DX": dx, "AGE": 70.0 + m / 12,
           "PTGENDER": "Female", "PTEDUCAT": 16, "APOE4": 1, "MMSE": 27, "ADAS13": 15, "CDRSB": 1.5,
           "TAU": 250.0, "PTAU": 24.0}
    row.update(extra)
    return row


def write_cohort(root: Path, rows: list[dict], pet: dict[str, bool]) -> Path:
    """Table + manifest + small random NIfTI files for every subject in ``pet``."""
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    manifest = []
    for ptid, has_pet in pet.items():
        nib.save(nib.Nifti1Image(rng.random(SHAPE).astype(np.float32), np.eye(4)), root / "img" / f"{ptid}_T1.nii.gz")
        pet_rel = ""
        if has_pet:
            pet_rel = f"img/{ptid}_FDG.nii.gz"
            nib.save(nib.Nifti1Image(rng.random(SHAPE).astype(np.float32), np.eye(4)), root / pet_rel)
        manifest.append({"PTID": ptid, "mri_path": f"img/{ptid}_T1.nii.gz", "pet_path": pet_rel})
    pd.DataFrame(rows).to_csv(root / "ADNIMERGE.csv", index=False)
    pd.DataFrame(manifest).to_csv(root / "manifest.csv", index=False)
    return root


def trajectories() -> tuple[list[dict], dict[str, bool]]:
    rows = []
    # A converts at 24 months (pMCI, event at 24); B stable through 48 (sMCI, censored at 48)
    rows += [visit("A", m, "MCI") for m in (0, 12)] + [visit("A", m, "Dementia") for m in (24, 36)]
    rows += [visit("B", m, "MCI") for m in (0, 12, 24, 36, 48)]
    # C converts at 48 (after the horizon: sMCI, but event at 48); D lost at 24 without converting (no label)
    rows += [visit("C", m, "MCI") for m in (0, 12, 24, 36)] + [visit("C", 48, "Dementia")]
    rows += [visit("D", m, "MCI") for m in (0, 12, 24)]
    # E normal at baseline (not MCI); F converts at 6 months
    rows += [visit("E", m, "CN") for m in (0, 12, 24, 36)]
    rows += [visit("F", 0, "MCI"), visit("F", 6, "Dementia"), visit("F", 12, "Dementia")]
    return rows, {"A": True, "B": False, "C": True, "D": True, "E": True, "F": False}


def test_labels_times_and_natural_pet(tmp_path: Path) -> None:
    rows, pet = trajectories()
    ds = AdniDataset(cfg(write_cohort(tmp_path / "c", rows, pet)), progress=False)
    got = dict(zip(ds.subjects, zip(ds.labels.tolist(), ds.times.tolist(), ds.events.tolist())))
    assert got == {"A": (1, 24.0, 1.0), "B": (0, 48.0, 0.0), "C": (0, 48.0, 1.0), "F": (1, 6.0, 1.0)}
    excluded = ds.report.to_dict()["excluded"]
    assert excluded["not MCI at baseline"]["subjects"] == ["E"]
    assert excluded["followed less than the horizon without converting"]["subjects"] == ["D"]
    ds.fit(np.arange(len(ds)))
    b = ds[ds.subjects.index("B")]
    assert b["present"]["pet"] is False and b["present"]["mri"] is True
    a = ds[ds.subjects.index("A")]
    assert a["present"]["pet"] is True and a["inputs"]["pet"].abs().sum() > 0
    assert a["inputs"]["mri"].shape == (1, *SHAPE)
    assert float(a["inputs"]["mri"].min()) >= -1.0 and float(a["inputs"]["mri"].max()) <= 1.0


def test_horizon_and_explicit_label_column(tmp_path: Path) -> None:
    rows, pet = trajectories()
    long_rows = rows + [visit("G", m, "MCI") for m in (0, 24, 48, 60)]
    ds = AdniDataset(cfg(write_cohort(tmp_path / "c", long_rows, {**pet, "G": False}), horizon_months=60),
                     progress=False)
    labels = dict(zip(ds.subjects, ds.labels.tolist()))
    assert labels == {"A": 1, "C": 1, "F": 1, "G": 0}  # B followed 48 < 60 months without converting
    for r in rows:
        r["LABEL"] = {"A": "pMCI", "B": "sMCI", "C": "sMCI", "D": "pMCI", "E": "", "F": 1}[r["PTID"]]
    ds = AdniDataset(cfg(write_cohort(tmp_path / "d", rows, pet), label_column="LABEL"), progress=False)
    assert dict(zip(ds.subjects, ds.labels.tolist())) == {"A": 1, "B": 0, "C": 0, "D": 1, "F": 1}


def test_synthetic_cohort_loads_and_splits_by_subject(tiny_adni_root: Path) -> None:
    ds = AdniDataset(AdniDataConfig(root=tiny_adni_root, volume_shape=(16, 16, 16)), progress=False)
    assert ds.synthetic and 0.2 < ds.labels.mean() < 0.8 and 0.5 < ds.has_pet.mean() < 0.95
    dm = DataModule(ds, SplitConfig(), seed=0, batch_size=8)
    parts = [set(np.asarray(ds.subjects)[dm.indices(s)]) for s in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sum(map(len, parts)) == len(ds)
    folds = [set(DataModule(ds, SplitConfig(folds=3, fold=k), 0).indices("test").tolist()) for k in range(3)]
    assert set().union(*folds) == set(range(len(ds))) and sum(map(len, folds)) == len(ds)


# ------------------------------------------------------------------ bad inputs
def make(tmp_path: Path) -> Path:
    rows, pet = trajectories()
    return write_cohort(tmp_path / "c", rows, pet)


def load(root: Path, **kw) -> AdniDataset:
    return AdniDataset(cfg(root, **kw), progress=False)


def test_missing_root_and_table(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data root .* does not exist"):
        load(tmp_path / "nowhere")
    root = make(tmp_path)
    (root / "ADNIMERGE.csv").unlink()
    with pytest.raises(DataError, match="ADNIMERGE.csv does not exist"):
        load(root)


def test_manifest_row_pointing_at_missing_nifti(tmp_path: Path) -> None:
    root = make(tmp_path)
    (root / "img" / "A_FDG.nii.gz").unlink()
    with pytest.raises(DataError, match=r"subject A: PET file .*A_FDG.nii.gz"):
        load(root)


def test_corrupt_and_truncated_nifti(tmp_path: Path) -> None:
    root = make(tmp_path)
    (root / "img" / "B_T1.nii.gz").write_bytes(b"this is not a nifti file")
    with pytest.raises(DataError, match=r"subject B \(MRI\): cannot read NIfTI .*B_T1.nii.gz"):
        load(root)
    root = make(tmp_path / "t")
    raw = gzip.decompress((root / "img" / "C_T1.nii.gz").read_bytes())
    (root / "img" / "C_T1.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(DataError, match=r"subject C \(MRI\).*C_T1.nii.gz"):
        load(root)


def test_wrong_number_of_dimensions(tmp_path: Path) -> None:
    root = make(tmp_path)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), root / "img" / "F_T1.nii.gz")
    with pytest.raises(DataError, match=r"subject F \(MRI\).*shape \(8, 8, 8, 3\); expected a 3-D volume"):
        load(root)


def test_subjects_not_matching_between_table_and_manifest(tmp_path: Path) -> None:
    root = make(tmp_path)
    man = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    extra = man.iloc[[0]].assign(PTID="Z")
    pd.concat([man[man.PTID != "B"], extra]).to_csv(root / "manifest.csv", index=False)
    ds = load(root)  # default: skip and report
    excluded = ds.report.to_dict()["excluded"]
    assert excluded["in the table but has no MRI"]["subjects"] == ["B"]
    assert excluded["has images but is not in the table"]["subjects"] == ["Z"]
    with pytest.raises(DataError, match=r"1 in the table without MRI \(e.g. \['B'\]\), 1 with images but not in the table"):
        load(root, unmatched_subjects="error")


def test_nan_and_non_numeric_clinical_values(tmp_path: Path) -> None:
    rows, pet = trajectories()
    for r in rows:
        if r["PTID"] == "A":
            r["MMSE"] = np.nan
    root = write_cohort(tmp_path / "n", rows, pet)
    ds = load(root)
    ds.fit(np.arange(len(ds)))
    assert ds.report.imputed == {"MMSE": 1}
    a = ds[ds.subjects.index("A")]
    j = ds.clinical_names.index("MMSE")
    assert a["valid"]["clinical"][j].item() is False and a["inputs"]["clinical"][j].item() == 0.0  # = train mean
    strict = load(root, nan_policy="error")
    with pytest.raises(DataError, match=r"NaN in clinical column \['MMSE'\].*subject A"):
        strict.fit(np.arange(len(strict)))
    for r in rows:
        if r["PTID"] == "C":
            r["ADAS13"] = "n.a."
    with pytest.raises(DataError, match=r"column 'ADAS13' has non-numeric value 'n.a.' for subject C"):
        load(write_cohort(tmp_path / "x", rows, pet))


def test_missing_column_suggests_the_closest(tmp_path: Path) -> None:
    root = make(tmp_path)
    with pytest.raises(DataError, match=r"'MMSEE' \(did you mean 'MMSE'\?\)"):
        load(root, clinical_columns=["AGE", "MMSEE"])


def test_one_class_only(tmp_path: Path) -> None:
    rows, pet = trajectories()
    rows = [r for r in rows if r["PTID"] in ("B", "C")]
    root = write_cohort(tmp_path / "o", rows, {"B": True, "C": True})
    with pytest.raises(DataError, match="every usable subject is sMCI"):
        load(root)


def test_a_data_folder_that_cannot_hold_the_cache_is_read_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    import robustmm.io

    def read_only(path, write, shared=False):  # a shared, read-only copy of ADNI
        raise PermissionError(13, "Permission denied", str(Path(path).parent))

    root = make(tmp_path)
    monkeypatch.setattr(robustmm.io, "write_atomic", read_only)
    with caplog.at_level("WARNING"):
        ds = AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)  # failed with PermissionError
    assert np.array_equal(ds.mri.numpy(), load(root).mri.numpy())  # the same volumes as without a cache
    assert "could not write the volume cache" in caplog.text and "data.cache: false" in caplog.text


def test_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    root = make(tmp_path)
    first = AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)
    caches = list((root / ".robustmm_cache").glob("*.pt"))
    assert len(caches) == 1
    again = AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)
    assert np.array_equal(first.mri.numpy(), again.mri.numpy())
    shutil.copy(root / "img" / "A_T1.nii.gz", root / "img" / "B_T1.nii.gz")  # content changed
    AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)
    assert len(list((root / ".robustmm_cache").glob("*.pt"))) == 2


def test_a_failed_cache_write_leaves_nothing_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A full disk while the cache is written: torch.save raises RuntimeError (not OSError) half way."""
    import robustmm.io

    def disk_full(obj, path):
        Path(path).write_bytes(b"half a cache")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file")

    root = make(tmp_path)
    monkeypatch.setattr(robustmm.io.torch, "save", disk_full)
    with caplog.at_level("WARNING"):
        ds = AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)
    assert np.array_equal(ds.mri.numpy(), load(root).mri.numpy())
    assert "could not write the volume cache" in caplog.text and "PytorchStreamWriter" in caplog.text
    assert list((root / ".robustmm_cache").iterdir()) == []


_WRITER = """
import sys, time
from pathlib import Path
from robustmm.io import write_atomic

def write(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"part of a volume cache")
    print("writing", flush=True)
    time.sleep(600)  # killed here

write_atomic(Path(sys.argv[1]), write, shared=True)
"""


def test_a_cache_write_killed_half_way_is_cleaned_up_but_never_a_live_one(tmp_path: Path) -> None:
    """The temporary file of a writer that still runs is kept however old it looks; once the writer is killed
    (SIGKILL: nothing of it runs any more), the next load removes it."""
    import os
    import signal
    import subprocess
    import sys

    import robustmm.io
    from robustmm.io import ABANDONED_AFTER, remove_abandoned_tmp

    root = make(tmp_path)
    cache_dir = root / ".robustmm_cache"
    env = {**os.environ, "PYTHONPATH": str(Path(robustmm.io.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(cache_dir / "volumes_x.pt")], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        (tmp,) = cache_dir.glob(".volumes_x.pt.*.tmp")
        old = tmp.stat().st_mtime - 10 * ABANDONED_AFTER
        os.utime(tmp, (old, old))  # a slow writer: no write for a while, but alive and holding its lock
        assert remove_abandoned_tmp(cache_dir) == [] and tmp.exists()
        AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)
        assert tmp.exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert tmp.exists()  # what a killed write leaves
    ds = AdniDataset(AdniDataConfig(root=root, volume_shape=SHAPE), progress=False)
    assert not tmp.exists() and len(list(cache_dir.glob("*.pt"))) == 1 and ds.mri.shape[0] > 0
    assert not list(cache_dir.glob(".*"))


def test_abandoned_temporary_files_follow_the_age_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import robustmm.io
    from robustmm.io import ABANDONED_AFTER, FOREIGN_AFTER, _host_tag, remove_abandoned_tmp

    def tmp_file(name: str, idle: float) -> Path:
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (path.stat().st_mtime - idle,) * 2)
        return path

    here = _host_tag()
    young = tmp_file(f".volumes_a.pt.{here}@abc123.tmp", ABANDONED_AFTER / 2)  # maybe not locked yet
    mine = tmp_file(f".volumes_b.pt.{here}@abc123.tmp", 2 * ABANDONED_AFTER)
    foreign = tmp_file(".volumes_c.pt.otherhost@abc123.tmp", 2 * ABANDONED_AFTER)  # its lock may not be seen here
    foreign_old = tmp_file(".volumes_d.pt.otherhost@abc123.tmp", 2 * FOREIGN_AFTER)
    other = tmp_file(".volumes_e.pt.abc123.tmp", 2 * FOREIGN_AFTER)  # not a shared write's: not ours to judge
    assert remove_abandoned_tmp(tmp_path) == [mine, foreign_old]
    assert young.exists() and foreign.exists() and other.exists()
    monkeypatch.setattr(robustmm.io, "fcntl", None)  # a file system or OS without locks: the age rule only
    again = tmp_file(f".volumes_f.pt.{here}@abc123.tmp", 2 * ABANDONED_AFTER)
    assert remove_abandoned_tmp(tmp_path) == [] and again.exists()


# ------------------------------------------------------------------ real ADNIMERGE quirks
def test_older_adnimerge_diagnosis_codes_are_read_as_the_diagnosis_reached(tmp_path: Path) -> None:
    # ADNIMERGE before 2017 wrote transitions in DX ('MCI to Dementia' at the converting visit, often
    # with DX empty afterwards); DX_bl uses EMCI/LMCI/SMC/AD
    rows, pet = trajectories()
    rows += [visit("G", 0, "LMCI"), visit("G", 12, "MCI to Dementia"), visit("G", 24, ""), visit("G", 36, "")]
    rows += [visit("H", 0, "EMCI"), visit("H", 12, "AD"), visit("H", 24, "AD")]
    rows += [visit("I", 0, "NL to MCI"), visit("I", 12, "MCI"), visit("I", 40, "MCI to NL")]
    rows += [visit("J", 0, "SMC"), visit("J", 36, "NL")]
    ds = AdniDataset(cfg(write_cohort(tmp_path / "c", rows, {**pet, "G": True, "H": False, "I": False, "J": False})),
                     progress=False)
    got = dict(zip(ds.subjects, zip(ds.labels.tolist(), ds.times.tolist(), ds.events.tolist())))
    assert got["G"] == (1, 12.0, 1.0) and got["H"] == (1, 12.0, 1.0) and got["I"] == (0, 40.0, 0.0)
    assert "J" in ds.report.to_dict()["excluded"]["not MCI at baseline"]["subjects"]


def test_an_unknown_diagnosis_value_is_refused_with_subject_and_column(tmp_path: Path) -> None:
    # a code robustmm cannot read (here DXCHANGE's 5 = 'MCI to Dementia') must not count as 'no dementia'
    rows, pet = trajectories()
    for r in rows:
        if r["PTID"] == "A" and r["M"] == 24:
            r["DX"] = 5
    with pytest.raises(DataError, match=r"column 'DX' has value '5' .*subject A.*CN, MCI, Dementia"):
        load(write_cohort(tmp_path / "c", rows, pet))


def test_an_empty_baseline_diagnosis_is_its_own_exclusion_reason(tmp_path: Path) -> None:
    rows, pet = trajectories()
    for r in rows:
        if r["PTID"] == "B" and r["M"] == 0:
            r["DX"] = ""
    excluded = load(write_cohort(tmp_path / "c", rows, pet)).report.to_dict()["excluded"]
    assert excluded["no diagnosis at baseline"]["subjects"] == ["B"]


def test_a_subject_without_a_baseline_visit_is_excluded_not_read_from_a_later_visit(tmp_path: Path) -> None:
    rows, pet = trajectories()
    rows = [r for r in rows if not (r["PTID"] == "B" and r["M"] == 0)]  # B's first row is month 12
    ds = load(write_cohort(tmp_path / "c", rows, pet))
    assert "B" not in ds.subjects
    assert ds.report.to_dict()["excluded"]["no baseline visit (M = 0)"]["subjects"] == ["B"]


def test_viscode_style_months_are_read_and_other_codes_refused(tmp_path: Path) -> None:
    rows, pet = trajectories()
    ref = load(write_cohort(tmp_path / "ref", rows, pet))
    for r in rows:
        r["M"] = r["VISCODE"]  # 'bl', 'm06', 'm12', ...
    ds = load(write_cohort(tmp_path / "v", rows, pet))
    assert ds.subjects == ref.subjects and ds.labels.tolist() == ref.labels.tolist()
    assert ds.times.tolist() == ref.times.tolist()
    rows[0]["M"] = "sc"
    with pytest.raises(DataError, match=r"column 'M' has value 'sc' for subject A.*bl, m06"):
        load(write_cohort(tmp_path / "s", rows, pet))


def test_visit_rows_without_months_are_reported(tmp_path: Path) -> None:
    rows, pet = trajectories()
    rows.append(visit("B", 0, "Dementia", M=None))
    ds = load(write_cohort(tmp_path / "c", rows, pet))
    assert any("1 visit row with no M is left out" in note for note in ds.report.notes)


def test_manifest_paths_with_windows_separators_and_spaces(tmp_path: Path) -> None:
    root = make(tmp_path)
    (root / "img").rename(root / "my images")
    man = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    for col in ("mri_path", "pet_path"):
        man[col] = man[col].str.replace("img/", "my images\\", regex=False)
    man.to_csv(root / "manifest.csv", index=False)
    ds = load(root)
    assert ds.subjects == ["A", "B", "C", "F"] and ds.has_pet.tolist() == [True, False, True, False]


def test_a_clinical_column_repeated_in_the_table_header_is_refused(tmp_path: Path) -> None:
    # pandas renames the second MMSE to MMSE.1 and data.clinical_columns would pick the first, silently
    root = make(tmp_path)
    text = (root / "ADNIMERGE.csv").read_text().replace(",ADAS13,", ",MMSE,", 1)
    (root / "ADNIMERGE.csv").write_text(text)
    with pytest.raises(DataError, match=r"ADNIMERGE\.csv: column MMSE appears more than once"):
        load(root)


def test_a_visit_row_without_a_subject_id_is_refused_with_its_line(tmp_path: Path) -> None:
    # numeric ids: the empty cell made pandas read every id as a float (1000.0), which matched no
    # manifest row, and the row itself became a subject called "nan"
    rows, pet = trajectories()
    numeric = {p: str(1000 + i) for i, p in enumerate(pet)}
    rows = [{**r, "PTID": numeric[r["PTID"]]} for r in rows]
    root = write_cohort(tmp_path / "c", rows + [visit("", 12, "MCI")], {numeric[p]: v for p, v in pet.items()})
    with pytest.raises(DataError, match=rf"ADNIMERGE\.csv: 1 row has no PTID \(file line {len(rows) + 2}\)"):
        load(root)


def test_manifest_cells_are_read_without_surrounding_spaces(tmp_path: Path) -> None:
    root = make(tmp_path)
    man = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    (root / "manifest.csv").write_text("PTID, mri_path, pet_path\n" + "".join(
        f"{r.PTID}, {r.mri_path}, {r.pet_path}\n" for r in man.itertuples()))
    ds = load(root)
    assert ds.subjects == ["A", "B", "C", "F"] and ds.has_pet.tolist() == [True, False, True, False]


def test_a_data_root_without_its_clinical_table_fails_before_the_run_folder(tmp_path: Path, capsys) -> None:
    from robustmm.cli import main

    # the run made its folder, then the loader said the table was missing
    root, runs = tmp_path / "adni", tmp_path / "runs"
    root.mkdir()
    study = Path(__file__).resolve().parents[1] / "studies" / "adni_mci.yaml"
    assert main(["run", str(study), "--set", "data.synthetic=null", "--set", f"data.root={root}",
                 "--set", f"output_dir={runs}"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"clinical table {root / 'ADNIMERGE.csv'} does not exist; set "
                                                    "data.table (relative to data.root)")
    assert not runs.exists()
    from robustmm.data.registry import check_data_root

    # data.synthetic writes the cohort into an empty folder, not into one holding other files
    check_data_root(AdniDataConfig(root=root, synthetic={}))
    (root / "notes.txt").write_text("not a cohort")
    with pytest.raises(DataError, match="ADNIMERGE.csv does not exist"):
        check_data_root(AdniDataConfig(root=root, synthetic={}))
    (root / "ADNIMERGE.csv").write_text("PTID,M,DX\n")
    with pytest.raises(DataError, match=f"manifest {root / 'manifest.csv'} does not exist"):
        check_data_root(AdniDataConfig(root=root))
    check_data_root(AdniDataConfig(root=root, manifest=None, mri_pattern="{subject}.nii.gz"))

"""``--resume`` refuses data that changed since the run started (robustmm.report.datafingerprint)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from robustmm.cli import main
from robustmm.report import datafingerprint
from robustmm.report.datafingerprint import FINGERPRINT_FILE

ARGS = ["--quiet", "--set", "training.epochs=1"]


@pytest.fixture
def cohort_study(tiny_adni_root: Path, tiny_study: Path, tmp_path: Path) -> Path:
    """The tiny study over a copy of the tiny cohort, which a test may edit."""
    root = tmp_path / "cohort"
    shutil.copytree(tiny_adni_root, root, symlinks=True)
    shutil.rmtree(root / ".robustmm_cache", ignore_errors=True)
    tiny_study.write_text(tiny_study.read_text().replace(str(tiny_adni_root), str(root)))
    return tiny_study


def _interrupted_run(study: Path, out: Path) -> None:
    """A run with its checkpoints but not finished (as one killed while writing its report)."""
    assert main(["run", str(study), "--out", str(out), *ARGS]) == 0
    (out / "metrics.json").unlink()


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".robustmm.lock"}


def test_a_run_records_the_files_its_loader_reads(cohort_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(cohort_study), "--out", str(out), *ARGS]) == 0
    doc = json.loads((out / FINGERPRINT_FILE).read_text())
    files = doc["files"]
    assert "ADNIMERGE.csv" in files and "manifest.csv" in files and "sha256" in files["ADNIMERGE.csv"]
    assert any(k.startswith("images/") and k.endswith("_T1.nii.gz") for k in files)
    assert not any(k.startswith(".") or "/." in k for k in files)  # the volume cache the run wrote is not data
    assert (tmp_path / "cohort" / ".robustmm_cache").is_dir()
    assert "README.md" not in files  # in the folder, but not read by the loader


def test_resume_refuses_an_edited_table_and_touches_nothing(cohort_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    _interrupted_run(cohort_study, out)
    table = tmp_path / "cohort" / "ADNIMERGE.csv"
    table.write_text(table.read_text().replace("Dementia", "dementia", 1))  # same size
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "the data under data.root" in err and "ADNIMERGE.csv (content)" in err
    assert "restore the data" in err and "without --resume" in err and "--accept-data-change" in err
    assert _snapshot(out) == before and not (out / "metrics.json").exists()


def _replace_volume(path: Path) -> None:
    """Another scan of the subject: a valid NIfTI with other voxels."""
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32) + 1.0, image.affine), path)


def test_resume_names_volumes_added_removed_and_replaced(cohort_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    _interrupted_run(cohort_study, out)
    root = tmp_path / "cohort"
    first, second = sorted((root / "images").iterdir())[:2]
    t1 = next(first.glob("*_T1.nii.gz"))
    _replace_volume(t1)
    removed = next(second.glob("*_T1.nii.gz"))
    removed.unlink()
    (root / "images" / "999_S_9999").mkdir()
    shutil.copy(t1, root / "images" / "999_S_9999" / "999_S_9999_T1.nii.gz")
    with open(root / "manifest.csv", "a") as fh:
        fh.write("999_S_9999,images/999_S_9999/999_S_9999_T1.nii.gz,\n")
    (root / "notes.txt").write_text("not read by the loader\n")
    capsys.readouterr()
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "1 added (images/999_S_9999/999_S_9999_T1.nii.gz)" in err
    assert f"1 removed (images/{second.name}/{removed.name})" in err
    assert "2 changed (" in err and "manifest.csv (size" in err and f"images/{first.name}/{t1.name} (" in err
    assert "notes.txt" not in err


def test_a_table_saved_again_unchanged_resumes(cohort_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _interrupted_run(cohort_study, out)
    table = tmp_path / "cohort" / "ADNIMERGE.csv"
    table.write_bytes(table.read_bytes())  # a new modification time, the same content
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 0
    assert (out / "metrics.json").is_file()


def test_accept_data_change_continues_and_records_the_new_data(cohort_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    _interrupted_run(cohort_study, out)
    volume = next((tmp_path / "cohort" / "images").glob("*/*_T1.nii.gz"))
    _replace_volume(volume)
    key = volume.relative_to(tmp_path / "cohort").as_posix()
    recorded = json.loads((out / FINGERPRINT_FILE).read_text())["files"][key]
    capsys.readouterr()
    assert main(["run", str(cohort_study), "--resume", str(out), "--accept-data-change", *ARGS]) == 0
    err = capsys.readouterr().err
    assert f"--accept-data-change: the data changed since the run started (1 changed ({key} (" in err
    doc = json.loads((out / FINGERPRINT_FILE).read_text())
    assert doc["files"][key] != recorded and doc["accepted"][0]["changed"] == 1
    assert key in (out / "log.txt").read_text()
    (out / "metrics.json").unlink()
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 0  # the accepted data are the record


def test_accept_data_change_needs_resume(cohort_study: Path, capsys) -> None:
    assert main(["run", str(cohort_study), "--accept-data-change", *ARGS]) == 2
    assert "--accept-data-change continues a run whose data changed: give that run with --resume" in \
        capsys.readouterr().err


def test_a_run_folder_without_fingerprint_resumes_with_a_notice(cohort_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    _interrupted_run(cohort_study, out)
    (out / FINGERPRINT_FILE).unlink()  # as written by an older robustmm
    capsys.readouterr()
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if FINGERPRINT_FILE in line]
    assert len(notices) == 1 and "older robustmm" in notices[0] and "recorded now" in notices[0]
    assert "ADNIMERGE.csv" in json.loads((out / FINGERPRINT_FILE).read_text())["files"]


def test_a_damaged_fingerprint_is_refused_with_the_ways_forward(cohort_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    _interrupted_run(cohort_study, out)
    (out / FINGERPRINT_FILE).write_text("{")
    capsys.readouterr()
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert f"{FINGERPRINT_FILE} cannot be read" in err and "delete the file and resume again" in err


def test_a_finished_run_is_reported_whatever_its_data(cohort_study: Path, tmp_path: Path) -> None:
    """Resuming a finished run only prints its stored results: nothing is trained or evaluated on the data."""
    out = tmp_path / "run"
    assert main(["run", str(cohort_study), "--out", str(out), *ARGS]) == 0
    table = tmp_path / "cohort" / "ADNIMERGE.csv"
    table.write_text(table.read_text().replace("Dementia", "dementia", 1))
    assert main(["run", str(cohort_study), "--resume", str(out), *ARGS]) == 0
    assert main(["run", str(cohort_study), "--resume", str(out), "--rewrite-results", *ARGS]) == 2


class _Data:
    def __init__(self, root: Path, kind: str = "brats", synthetic=None, options=None) -> None:
        self.root, self.kind, self.synthetic, self.options = root, kind, synthetic, options or {}


def test_large_files_are_compared_by_size_and_time_small_ones_by_content(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "case").mkdir(parents=True)
    big = root / "case" / "t1.nii.gz"
    big.write_bytes(b"x" * (datafingerprint.SMALL + 1))
    small = root / "case" / "seg.nii.gz"
    small.write_bytes(b"y" * 10)
    (root / ".cache").mkdir()
    (root / ".cache" / "volumes.pt").write_bytes(b"z")
    old = datafingerprint.compute(_Data(root))
    assert set(old["files"]) == {"case/t1.nii.gz", "case/seg.nii.gz"}
    assert "sha256" not in old["files"]["case/t1.nii.gz"] and "sha256" in old["files"]["case/seg.nii.gz"]
    st = small.stat()
    os.utime(small, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: the same content
    assert not any(datafingerprint.differences(old, datafingerprint.compute(_Data(root))).values())
    st = big.stat()
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    diff = datafingerprint.differences(old, datafingerprint.compute(_Data(root)))
    assert diff["changed"] == ["case/t1.nii.gz (modification time)"]


def test_generated_data_is_described_by_its_settings_not_its_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n")
    doc = datafingerprint.compute(_Data(tmp_path, synthetic={"cases": 4}))
    assert doc["synthetic"] is True and doc["files"] == {}


def test_a_table_study_lists_only_its_table(tmp_path: Path) -> None:
    (tmp_path / "cohort.csv").write_text("id,y\n1,0\n")
    (tmp_path / "other.csv").write_text("id\n")
    doc = datafingerprint.compute(_Data(tmp_path, "table", options={"file": "cohort.csv"}))
    assert list(doc["files"]) == ["cohort.csv"]


def test_an_adni_study_lists_its_table_manifest_and_the_images_they_name(tmp_path: Path) -> None:
    from robustmm.config.schema import AdniDataConfig

    root, scans = tmp_path / "adni", tmp_path / "scans"  # images may live outside data.root
    (root / "raw").mkdir(parents=True)
    scans.mkdir()
    (root / "ADNIMERGE.csv").write_text("PTID\nS1\n")
    (root / "raw" / "download.zip").write_bytes(b"not read")
    for name in ("S1_T1.nii.gz", "S1_FDG.nii.gz", "S2_T1.nii.gz"):
        (scans / name).write_bytes(b"v")
    (root / "manifest.csv").write_text(  # an absolute path, and one relative to data.root
        f"PTID, mri_path ,pet_path\nS1,{scans / 'S1_T1.nii.gz'},../scans/S1_FDG.nii.gz\n")
    files = datafingerprint.compute(AdniDataConfig(root=root))["files"]
    assert sorted(files) == sorted(["ADNIMERGE.csv", "manifest.csv", str(scans / "S1_T1.nii.gz"),
                                    str(scans / "S1_FDG.nii.gz")])
    by_pattern = AdniDataConfig(root=root, manifest=None, mri_pattern="../scans/{subject}_T1.nii.gz")
    assert sorted(datafingerprint.compute(by_pattern)["files"]) == sorted(
        ["ADNIMERGE.csv", str(scans / "S1_T1.nii.gz"), str(scans / "S2_T1.nii.gz")])


def test_an_older_multi_seed_run_resumes_with_one_notice(cohort_study: Path, tmp_path: Path, capsys) -> None:
    out, seeds = tmp_path / "run", ["--seeds", "0,1"]
    assert main(["run", str(cohort_study), "--out", str(out), *seeds, *ARGS]) == 0
    for path in out.rglob(FINGERPRINT_FILE):
        path.unlink()  # as written by an older robustmm
    for path in (out / "metrics.json", out / "seed_1" / "metrics.json"):
        path.unlink()  # seed 1 interrupted
    capsys.readouterr()
    assert main(["run", str(cohort_study), "--resume", str(out), *seeds, *ARGS]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if FINGERPRINT_FILE in line]
    assert len(notices) == 1 and str(out) in notices[0]
    assert (out / FINGERPRINT_FILE).is_file() and (out / "seed_1" / FINGERPRINT_FILE).is_file()

"""BraTS loader: real cases (both conventions), subsets, bad inputs, synthetic round trip."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from robustmm.data.base import SYNTHETIC_MARKER
from robustmm.data.batch import collate
from robustmm.data.brats import SEQUENCES, BraTSDataset, all_subsets
from robustmm.data.synth.brats import write_synthetic_brats
from robustmm.errors import DataError

# ----------------------------------------------------------------------------- real cases

RAW_FILES = {  # canonical sequence -> file suffix, per case
    "TCGA-DU-7294": {"flair": "_flair", "t1ce": "_t1ce", "t1": "_t1", "t2": "_t2", "seg": "_seg"},
    "BrainLesion-demo-000": {"flair": "-t2f", "t1ce": "-t1c", "t1": "-t1n", "t2": "-t2w", "seg": "-seg"},
}
ENHANCING = {"TCGA-DU-7294": 4, "BrainLesion-demo-000": 3}
# [TC, WT, ET] voxel counts; the raw-file check below recomputes them independently
KNOWN_COUNTS = {"TCGA-DU-7294": [9281, 24188, 0], "BrainLesion-demo-000": [36166, 144732, 21866]}

_real_cache: dict[Path, BraTSDataset] = {}


@pytest.fixture
def real_uncropped(shared_data: Path) -> BraTSDataset:
    """Both real cases, loaded once, without cropping so voxels line up with the raw files."""
    root = shared_data / "brats_cases"
    if root not in _real_cache:
        _real_cache[root] = BraTSDataset(root, crop_foreground=False)
    return _real_cache[root]


def _raw_canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Voxels and affine of a NIfTI file reoriented to RAS with nibabel (independent of MONAI)."""
    img = nib.as_closest_canonical(nib.load(str(path)))
    return np.asarray(img.dataobj), img.affine


@pytest.mark.shared_data
def test_real_cases_listing(real_uncropped: BraTSDataset) -> None:
    ds = real_uncropped
    assert ds.subject_ids() == ["BrainLesion-demo-000", "TCGA-DU-7294"]
    assert ds.label_conventions() == ["2023", "2018"]
    assert all(v.tolist() == [True, True] for v in ds.natural_presence().values())
    assert list(ds.modalities) == ["flair", "t1ce", "t1", "t2"]
    assert ds.modalities["t2"].kind == "volume" and ds.modalities["t2"].shape == (1, 240, 240, 155)
    assert ds.task.kind == "segmentation" and ds.task.class_names == ("TC", "WT", "ET")


@pytest.mark.shared_data
@pytest.mark.parametrize("case", ["TCGA-DU-7294", "BrainLesion-demo-000"])
def test_real_case_regions_match_raw_labels(real_uncropped: BraTSDataset, shared_data: Path, case: str) -> None:
    ds = real_uncropped
    sample = ds[ds.subject_ids().index(case)]
    folder = shared_data / "brats_cases" / case
    seg, affine = _raw_canonical(folder / f"{case}{RAW_FILES[case]['seg']}.nii.gz")
    et = ENHANCING[case]
    assert set(np.unique(seg).tolist()) <= {0, 1, 2, et}
    raw_regions = [np.isin(seg, [1, et]), np.isin(seg, [1, 2, et]), seg == et]
    raw_counts = [int(m.sum()) for m in raw_regions]
    assert raw_counts == KNOWN_COUNTS[case]

    target = sample["target"]
    assert target.dtype == torch.float32 and target.shape == (3, 240, 240, 155)
    assert set(torch.unique(target).tolist()) <= {0.0, 1.0}
    assert target.sum(dim=(1, 2, 3)).long().tolist() == raw_counts
    for c in range(3):  # voxel-wise, not only counts: orientation and channel order are right
        assert np.array_equal(target[c].numpy().astype(bool), raw_regions[c])
    assert np.allclose(np.asarray(sample["meta"]["affine"]), affine, atol=1e-4)
    assert sample["meta"]["subject"] == case
    assert all(sample["present"].values())


@pytest.mark.shared_data
@pytest.mark.parametrize("case", ["TCGA-DU-7294", "BrainLesion-demo-000"])
def test_real_case_sequences_mapped_and_normalized(real_uncropped: BraTSDataset, shared_data: Path, case: str) -> None:
    ds = real_uncropped
    sample = ds[ds.subject_ids().index(case)]
    folder = shared_data / "brats_cases" / case
    for seq in SEQUENCES:
        raw, _ = _raw_canonical(folder / f"{case}{RAW_FILES[case][seq]}.nii.gz")
        raw = raw.astype(np.float64)
        nz = raw != 0
        expected = (raw[nz] - raw[nz].mean()) / raw[nz].std()
        got = sample["inputs"][seq][0].numpy()
        assert got.shape == raw.shape
        # the right file under the right name, z-scored over its own non-zero voxels only
        assert np.allclose(got[nz], expected, atol=1e-3), seq
        assert np.all(got[~nz] == 0), seq


# ----------------------------------------------------------------------------- subsets


def test_all_subsets_brats_fifteen() -> None:
    subsets = all_subsets(SEQUENCES)
    assert len(subsets) == 15
    assert len(set(subsets)) == 15
    assert all(len(s) >= 1 for s in subsets)
    assert subsets[:5] == [("flair",), ("t1ce",), ("t1",), ("t2",), ("flair", "t1ce")]
    assert subsets[-1] == ("flair", "t1ce", "t1", "t2")
    assert [len(s) for s in subsets] == [1] * 4 + [2] * 6 + [3] * 4 + [4]
    order = {m: i for i, m in enumerate(SEQUENCES)}
    for s in subsets:  # members keep modality order
        assert [order[m] for m in s] == sorted(order[m] for m in s)
    assert all_subsets(SEQUENCES) == subsets  # stable
    assert [len(all_subsets([str(i) for i in range(m)])) for m in range(1, 6)] == [1, 3, 7, 15, 31]
    with pytest.raises(ValueError):
        all_subsets(["a", "a"])


# ----------------------------------------------------------------------------- bad inputs

SMALL = (16, 16, 16)


def _one_case(tmp_path: Path, naming: str = "2018") -> tuple[Path, str, Path]:
    root = write_synthetic_brats(tmp_path / "brats", n_cases=1, shape=SMALL, seed=3, naming=naming)
    folder = next(p for p in root.iterdir() if p.is_dir())
    return root, folder.name, folder


def _assert_data_error(root: Path, case: str, filename: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        BraTSDataset(root, **kwargs)
    message = str(info.value)
    assert case in message and filename in message, message
    return message


def test_missing_sequence_file(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    (folder / f"{case}_t1ce.nii.gz").unlink()
    msg = _assert_data_error(root, case, f"{case}_t1ce.nii.gz")
    # the option as a study and the CLI spell it (not the Python keyword)
    assert "data.options.allow_missing_sequences: true" in msg and "--allow-missing-sequences" in msg
    assert "allow_missing_sequences=True" not in msg
    ds = BraTSDataset(root, allow_missing_sequences=True)
    assert ds.natural_presence()["t1ce"].tolist() == [False]
    assert ds.natural_presence()["flair"].tolist() == [True]
    sample = ds[0]
    assert sample["present"] == {"flair": True, "t1ce": False, "t1": True, "t2": True}
    assert torch.count_nonzero(sample["inputs"]["t1ce"]) == 0
    assert torch.count_nonzero(sample["inputs"]["flair"]) > 0
    assert sample["inputs"]["t1ce"].shape == sample["inputs"]["flair"].shape


def test_a_sequence_saved_both_as_nii_and_nii_gz_is_refused(tmp_path: Path) -> None:
    """An uncompressed copy next to the .nii.gz (e.g. left by an editing tool) was chosen or skipped
    by file-name order, silently; the two may differ."""
    root, case, folder = _one_case(tmp_path, naming="2023")
    img = nib.load(folder / f"{case}-t2w.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 2, img.affine), folder / f"{case}-t2w.nii")
    msg = _assert_data_error(root, case, f"{case}-t2w.nii.gz")
    assert f"{case}-t2w.nii and {case}-t2w.nii.gz" in msg and "keep one" in msg


def test_missing_segmentation_file(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path, naming="2023")
    (folder / f"{case}-seg.nii.gz").unlink()
    _assert_data_error(root, case, f"{case}-seg.nii.gz")


def test_shape_mismatch(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    affine = nib.load(str(folder / f"{case}_flair.nii.gz")).affine
    nib.save(nib.Nifti1Image(np.ones((16, 16, 15), np.int16), affine), str(folder / f"{case}_t2.nii.gz"))
    msg = _assert_data_error(root, case, f"{case}_t2.nii.gz")
    assert "(16, 16, 15)" in msg


def test_affine_mismatch(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    img = nib.load(str(folder / f"{case}_t1.nii.gz"))
    shifted = img.affine.copy()
    shifted[0, 3] += 0.5
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted), str(folder / f"{case}_t1.nii.gz"))
    _assert_data_error(root, case, f"{case}_t1.nii.gz")
    # differences within the tolerance are accepted
    shifted[0, 3] = img.affine[0, 3] + 1e-4
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted), str(folder / f"{case}_t1.nii.gz"))
    assert len(BraTSDataset(root)) == 1


def test_unknown_label_values(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    seg_path = folder / f"{case}_seg.nii.gz"
    img = nib.load(str(seg_path))
    seg = np.asarray(img.dataobj).copy()
    seg[0, 0, 0] = 5
    seg[0, 0, 1] = 7
    nib.save(nib.Nifti1Image(seg, img.affine), str(seg_path))
    msg = _assert_data_error(root, case, f"{case}_seg.nii.gz")
    assert "[5, 7]" in msg and "allowed values: [0, 1, 2, 4]" in msg
    assert "label_convention" not in msg  # no convention has 5 or 7: suggesting one would mislead


def test_only_the_other_conventions_enhancing_value_suggests_that_convention(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)  # 2018 naming: enhancing = 4; the 2023 files use 3
    seg_path = folder / f"{case}_seg.nii.gz"
    img = nib.load(str(seg_path))
    seg = np.asarray(img.dataobj).copy()
    seg[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(seg, img.affine), str(seg_path))
    msg = _assert_data_error(root, case, f"{case}_seg.nii.gz")
    assert "data.options.label_convention: '2023'" in msg and "--label-convention 2023" in msg
    seg[0, 0, 1] = 7  # 3 and 7: the 2023 convention would not explain the 7
    nib.save(nib.Nifti1Image(seg, img.affine), str(seg_path))
    msg = _assert_data_error(root, case, f"{case}_seg.nii.gz")
    assert "[3, 7]" in msg and "label_convention" not in msg


def test_label_convention_auto_and_override(tmp_path: Path) -> None:
    # 2023 naming but enhancing stored as 4 (2018 labels): auto rejects, the override accepts
    root, case, folder = _one_case(tmp_path, naming="2023")
    seg_path = folder / f"{case}-seg.nii.gz"
    img = nib.load(str(seg_path))
    seg = np.asarray(img.dataobj).copy()
    n_enh = int((seg == 3).sum())
    assert n_enh > 0
    seg[seg == 3] = 4
    nib.save(nib.Nifti1Image(seg, img.affine), str(seg_path))
    msg = _assert_data_error(root, case, f"{case}-seg.nii.gz")
    assert "data.options.label_convention: '2018'" in msg and "--label-convention 2018" in msg
    ds = BraTSDataset(root, label_convention="2018", crop_foreground=False)
    assert ds.label_conventions() == ["2018"]
    assert int(ds[0]["target"][2].sum()) == n_enh


def test_corrupt_file(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    (folder / f"{case}_flair.nii.gz").write_bytes(b"this is not a nifti file" * 10)
    _assert_data_error(root, case, f"{case}_flair.nii.gz")


def test_truncated_file(tmp_path: Path) -> None:
    # the header is intact, the voxel data are cut: found when the voxels are read
    root, case, folder = _one_case(tmp_path)
    path = folder / f"{case}_t2.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    _assert_data_error(root, case, f"{case}_t2.nii.gz")


def test_non_3d_volume(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    affine = nib.load(str(folder / f"{case}_flair.nii.gz")).affine
    nib.save(nib.Nifti1Image(np.ones((*SMALL, 2), np.int16), affine), str(folder / f"{case}_flair.nii.gz"))
    msg = _assert_data_error(root, case, f"{case}_flair.nii.gz")
    assert "3-D" in msg


def test_a_trailing_singleton_axis_is_read_as_the_3d_volume(tmp_path: Path) -> None:
    # (X, Y, Z, 1), as some tools save a 3-D volume; the ADNI reader accepts it too
    root, case, folder = _one_case(tmp_path)
    before = BraTSDataset(root)[0]
    for role in ("flair", "seg"):
        path = folder / f"{case}_{role}.nii.gz"
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., None], img.affine), path)
    after = BraTSDataset(root)[0]
    assert nib.load(folder / f"{case}_flair.nii.gz").shape == (*SMALL, 1)
    assert torch.equal(after["target"], before["target"])
    assert all(torch.equal(after["inputs"][s], before["inputs"][s]) for s in SEQUENCES)


def test_a_missing_file_is_named_with_the_extension_of_the_cases_other_files(tmp_path: Path) -> None:
    root, case, folder = _one_case(tmp_path)
    for path in folder.glob("*.nii.gz"):  # the case stored uncompressed
        nib.save(nib.load(path), path.with_name(path.name[: -len(".gz")]))
        path.unlink()
    (folder / f"{case}_t1ce.nii").unlink()
    msg = _assert_data_error(root, case, f"{case}_t1ce.nii")
    assert f"'{case}_t1ce.nii'" in msg and ".nii.gz" not in msg
    (folder / f"{case}_seg.nii").unlink()
    msg = _assert_data_error(root, case, f"segmentation file {case}_seg.nii is missing")
    assert ".nii.gz" not in msg


def test_empty_root_and_unknown_naming(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no BraTS cases"):
        BraTSDataset(tmp_path)
    odd = tmp_path / "case7"
    odd.mkdir()
    nib.save(nib.Nifti1Image(np.ones(SMALL, np.int16), np.eye(4)), str(odd / "case7_pd.nii.gz"))
    with pytest.raises(DataError, match="case7"):
        BraTSDataset(tmp_path)


# ----------------------------------------------------------------------------- synthetic


def _contrast(images: dict[str, np.ndarray], tc: np.ndarray, wt: np.ndarray, et: np.ndarray) -> dict[str, float]:
    brain = images["flair"] != 0
    oedema = wt & ~tc
    necrosis = tc & ~et
    healthy = brain & ~wt
    return {
        "flair_oedema": images["flair"][oedema].mean(),
        "flair_healthy": images["flair"][healthy].mean(),
        "t2_oedema": images["t2"][oedema].mean(),
        "t2_healthy": images["t2"][healthy].mean(),
        "t1ce_rim": images["t1ce"][et].mean(),
        "t1ce_necrosis": images["t1ce"][necrosis].mean(),
        "t1_oedema": images["t1"][oedema].mean(),
        "t1_healthy": images["t1"][healthy].mean(),
    }


def _check_planted(c: dict[str, float]) -> None:
    assert c["flair_oedema"] > c["flair_healthy"] + 0.5
    assert c["t2_oedema"] > c["t2_healthy"]
    assert c["t1ce_rim"] > c["t1ce_necrosis"] + 1.0
    # T1 is near-uninformative: its oedema contrast is far below FLAIR's
    assert abs(c["t1_oedema"] - c["t1_healthy"]) < 0.25 * (c["flair_oedema"] - c["flair_healthy"])


@pytest.mark.parametrize("naming", ["2018", "2023"])
def test_synthetic_round_trip_and_planted_contrast(tmp_path: Path, naming: str) -> None:
    root = write_synthetic_brats(tmp_path / "syn", n_cases=3, shape=(32, 32, 32), seed=1, naming=naming)
    assert (root / "README.md").is_file() and (root / SYNTHETIC_MARKER).is_file()
    ds = BraTSDataset(root, crop_foreground=False)
    assert ds.synthetic and len(ds) == 3
    assert ds.label_conventions() == [naming] * 3
    et_label = 4 if naming == "2018" else 3
    for i, case in enumerate(ds.subject_ids()):
        folder = root / case
        suffix = {"2018": {"flair": "_flair", "t1ce": "_t1ce", "t1": "_t1", "t2": "_t2", "seg": "_seg"},
                  "2023": {"flair": "-t2f", "t1ce": "-t1c", "t1": "-t1n", "t2": "-t2w", "seg": "-seg"}}[naming]
        seg, _ = _raw_canonical(folder / f"{case}{suffix['seg']}.nii.gz")
        assert set(np.unique(seg).tolist()) == {0, 1, 2, et_label}
        raw = {s: _raw_canonical(folder / f"{case}{suffix[s]}.nii.gz")[0].astype(float) for s in SEQUENCES}
        tc, wt, et = np.isin(seg, [1, et_label]), seg > 0, seg == et_label
        # planted contrast in the files (relative to each sequence's healthy-brain mean)
        rel = {s: v / v[(v != 0) & ~wt].mean() for s, v in raw.items()}
        _check_planted(_contrast(rel, tc, wt, et))
        # and after the loader's z-scoring, with the loader's own region channels
        sample = ds[i]
        target = sample["target"].numpy().astype(bool)
        assert np.array_equal(target[0], tc) and np.array_equal(target[1], wt) and np.array_equal(target[2], et)
        loaded = {s: sample["inputs"][s][0].numpy() for s in SEQUENCES}
        _check_planted(_contrast(loaded, target[0], target[1], target[2]))


def test_synthetic_deterministic(tmp_path: Path) -> None:
    a = write_synthetic_brats(tmp_path / "a", n_cases=2, shape=SMALL, seed=5)
    b = write_synthetic_brats(tmp_path / "b", n_cases=1, shape=SMALL, seed=5)
    c = write_synthetic_brats(tmp_path / "c", n_cases=1, shape=SMALL, seed=6)
    name = "SynthBraTS_000/SynthBraTS_000_flair.nii.gz"
    va, vb, vc = (np.asarray(nib.load(str(r / name)).dataobj) for r in (a, b, c))
    assert np.array_equal(va, vb)  # case 0 does not depend on n_cases
    assert not np.array_equal(va, vc)


def test_synthetic_crop_resize_and_training_crops(tmp_path: Path) -> None:
    root = write_synthetic_brats(tmp_path / "syn", n_cases=2, shape=(32, 32, 32), seed=2)
    full = BraTSDataset(root, crop_foreground=False)
    cropped = BraTSDataset(root)
    for i in range(2):
        f, c = full[i], cropped[i]
        brain = f["inputs"]["flair"][0] != 0
        box = [int(ax.max() - ax.min() + 1) for ax in brain.nonzero(as_tuple=True)]
        assert list(c["target"].shape[1:]) == box  # cropped to the brain's bounding box
        assert torch.equal(c["target"].sum(dim=(1, 2, 3)), f["target"].sum(dim=(1, 2, 3)))  # no tumour lost

    resized = BraTSDataset(root, spatial_size=(20, 24, 16))
    assert resized.modalities["flair"].shape == (1, 20, 24, 16)
    s = resized[0]
    assert s["target"].shape == (3, 20, 24, 16)
    assert set(torch.unique(s["target"]).tolist()) <= {0.0, 1.0}  # nearest keeps labels binary
    assert s["target"][1].sum() > 0

    train = BraTSDataset(root, roi_size=(16, 16, 16), pos_neg=True, seed=0)
    assert train.modalities["t1"].shape == (1, 16, 16, 16)
    batch = collate([train[0], train[1]])
    assert batch.inputs["flair"].shape == (2, 1, 16, 16, 16)
    assert batch.target.shape == (2, 3, 16, 16, 16)
    assert batch.subjects == train.subject_ids()
    assert bool(batch.present["t2"].all())

    uniform = BraTSDataset(root, roi_size=(16, 12, 16), seed=4)
    again = BraTSDataset(root, roi_size=(16, 12, 16), seed=4)
    a, b = uniform[0], again[0]
    assert a["inputs"]["flair"].shape == (1, 16, 12, 16) and a["target"].shape == (3, 16, 12, 16)
    assert torch.equal(a["inputs"]["t1ce"], b["inputs"]["t1ce"])  # crops are reproducible given the seed


# ----------------------------------------------------------------------------- data check brats


def _set_label(seg_path: Path, value: int) -> None:
    img = nib.load(str(seg_path))
    seg = np.asarray(img.dataobj).copy()
    seg[0, 0, 0] = value
    nib.save(nib.Nifti1Image(seg, img.affine), str(seg_path))


def test_check_reads_every_case_and_lists_every_bad_one(tmp_path: Path, capsys) -> None:
    """Bad files after the first case (a label 7, a truncated sequence) were reported as OK."""
    from robustmm.cli import main

    root = write_synthetic_brats(tmp_path / "brats", n_cases=4, shape=SMALL, seed=1, oracle=False)
    assert main(["data", "check", "brats", str(root), "--quiet"]) == 0
    _set_label(root / "SynthBraTS_002" / "SynthBraTS_002_seg.nii.gz", 7)
    t2 = root / "SynthBraTS_003" / "SynthBraTS_003_t2.nii.gz"
    raw = gzip.decompress(t2.read_bytes())
    t2.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # header intact, voxels cut
    capsys.readouterr()
    assert main(["data", "check", "brats", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "2 of 4 cases have problems" in err
    assert "SynthBraTS_002_seg.nii.gz" in err and "[7]" in err
    assert "SynthBraTS_003_t2.nii.gz" in err and "truncated" in err
    assert "Traceback" not in err


def test_check_lists_every_bad_file_of_a_case(tmp_path: Path) -> None:
    from robustmm.data.brats import check_cases

    root = write_synthetic_brats(tmp_path / "brats", n_cases=1, shape=SMALL, seed=1, oracle=False)
    folder = root / "SynthBraTS_000"
    _set_label(folder / "SynthBraTS_000_seg.nii.gz", 9)
    (folder / "SynthBraTS_000_t1.nii.gz").write_bytes(gzip.compress(b"\0" * 400))  # unreadable header
    (folder / "SynthBraTS_000_flair.nii.gz").write_bytes(b"")
    [(case, record, problems)] = list(check_cases(root, progress=False))
    assert case == "SynthBraTS_000" and record is None  # headers unusable: reported, voxels not read
    assert len(problems) == 1 and "SynthBraTS_000_" in problems[0]

    root2 = write_synthetic_brats(tmp_path / "brats2", n_cases=1, shape=SMALL, seed=1, oracle=False)
    folder = root2 / "SynthBraTS_000"
    _set_label(folder / "SynthBraTS_000_seg.nii.gz", 9)
    for seq in ("t1", "flair"):
        path = folder / f"SynthBraTS_000_{seq}.nii.gz"
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    [(_, record, problems)] = list(check_cases(root2, progress=False))
    assert record is not None
    assert [p.split(" (")[0].split(": ", 1)[1] for p in problems] == [
        "SynthBraTS_000_seg.nii.gz", "cannot read voxels of SynthBraTS_000_flair.nii.gz",
        "cannot read voxels of SynthBraTS_000_t1.nii.gz"]


def test_check_passes_the_real_cases(shared_data: Path, capsys) -> None:
    from robustmm.cli import main

    assert main(["data", "check", "brats", str(shared_data / "brats_cases"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 cases" in out and "every case read in full" in out


BRATS_STUDY = Path(__file__).resolve().parents[1] / "studies" / "brats_missing.yaml"


def test_a_run_whose_brats_root_holds_no_case_stops_before_the_run_folder(tmp_path: Path, capsys) -> None:
    # a root without cases was found by the loader, after the run folder was made
    from robustmm.cli import main

    empty, out = tmp_path / "empty", tmp_path / "run"
    empty.mkdir()
    for root, said in ((empty, f"no BraTS cases under {empty}"), (tmp_path / "nowhere", "nowhere does not exist")):
        assert main(["run", str(BRATS_STUDY), "--out", str(out), "--quiet", "--set", "data.synthetic=null",
                     "--set", f"data.root={root}"]) == 2
        err = capsys.readouterr().err
        assert said in err and "robustmm data synth brats --out ROOT" in err, err
        assert not out.exists()


def test_the_early_brats_root_check_passes_real_cases_and_leaves_synthetic_roots_alone(tmp_path: Path,
                                                                                      shared_data: Path) -> None:
    from robustmm.config import load_study
    from robustmm.data.registry import check_data_root

    # one case named as in 2018-2020, one as in 2023
    check_data_root(load_study(BRATS_STUDY, ["data.synthetic=null", f"data.root={shared_data / 'brats_cases'}"]).data)
    check_data_root(load_study(BRATS_STUDY, [f"data.root={tmp_path / 'written_on_first_use'}"]).data)

"""Mechanism knobs of the synthetic generators and their oracle ceilings (robustmm.data.synth).

Ceiling tests simulate the planted latent variables directly (no volumes); knob tests write
tiny files and check that each knob changes what its documentation says.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from robustmm.data.synth import adni, brats, mmsa, tcga
from robustmm.data.synth.oracle import concordance_of

# ------------------------------------------------------------------------------------ ADNI


def test_adni_ideal_generated_pet_adds_auc_only_when_pet_comes_from_mri() -> None:
    none = adni.oracle_ceilings(seed=0, pet_from_mri=0.0)["ceilings"]
    full = adni.oracle_ceilings(seed=0, pet_from_mri=1.0)["ceilings"]
    # the numbers for today's cohort: MRI+clinical 0.827, any subset with real PET 0.935
    assert none["mri+clinical"] == pytest.approx(0.827, abs=0.01)
    assert none["mri+pet+clinical"] == pytest.approx(0.935, abs=0.01)
    # pet_from_mri = 0: the ideal generated PET is 0.6 * (MRI's atrophy read-out), an exact linear
    # function of a feature already in the model, so the fitted linear score is the same
    # function; only the solver's tolerance and the (negligible, C=1e4) penalty can move it.
    # Measured: 0.0000 at 4 decimals. 0.002 is far below both that noise-free gap's scale and
    # the 0.05 effect required at pet_from_mri = 1.
    assert abs(none["mri+clinical+generated_pet"] - none["mri+clinical"]) <= 0.002
    assert abs(none["mri+generated_pet"] - none["mri"]) <= 0.002
    assert full["mri+clinical+generated_pet"] - full["mri+clinical"] >= 0.05
    assert full["mri+generated_pet"] - full["mri"] >= 0.05
    # real PET stays the strong modality; a linear read-out of MRI does not get PET's signal
    assert full["pet+clinical"] - full["mri+clinical"] >= 0.05


def test_adni_modality_strength_knobs_move_their_ceiling() -> None:
    base = adni.oracle_ceilings(seed=1, n=8000)["ceilings"]
    weak_pet = adni.oracle_ceilings(seed=1, n=8000, pet_noise=2.0)["ceilings"]
    weak_mri = adni.oracle_ceilings(seed=1, n=8000, mri_noise=2.0)["ceilings"]
    weak_clin = adni.oracle_ceilings(seed=1, n=8000, clinical_noise=3.0)["ceilings"]
    assert base["pet"] - weak_pet["pet"] > 0.1
    assert base["mri"] - weak_mri["mri"] > 0.1
    assert base["clinical"] - weak_clin["clinical"] > 0.05
    assert abs(base["pet"] - weak_mri["pet"]) < 0.02  # the others stay put


def test_adni_writer_records_knobs_and_ceilings(tmp_path: Path) -> None:
    out = adni.write_synthetic_adni(tmp_path / "c", subjects=40, seed=2, pet_missing=0.5, native_shape=(10, 12, 10),
                                    pet_from_mri=1.0)
    marker = json.loads((out / "SYNTHETIC_DATA.json").read_text())
    assert marker["pet_from_mri"] == 1.0 and marker["pet_missing"] == 0.5
    ceil = marker["oracle"]["ceilings"]
    assert ceil["mri+clinical+generated_pet"] - ceil["mri+clinical"] >= 0.05
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert 0.2 < (manifest["pet_path"] == "").mean() < 0.8  # natural PET missingness follows pet_missing
    # the same seed without the knob: same subjects/visits, different MRI (c is planted) and labels source
    plain = adni.write_synthetic_adni(tmp_path / "p", subjects=40, seed=2, pet_missing=0.5,
                                      native_shape=(10, 12, 10), oracle=False)
    assert "oracle" not in json.loads((plain / "SYNTHETIC_DATA.json").read_text())
    a, b = pd.read_csv(out / "ADNIMERGE.csv"), pd.read_csv(plain / "ADNIMERGE.csv")
    assert list(a["PTID"].unique()) == list(b["PTID"].unique())
    import nibabel as nib

    first = manifest["mri_path"][0]
    assert not np.array_equal(nib.load(out / first).get_fdata(), nib.load(plain / first).get_fdata())


def test_adni_pet_nuisance_default_cohort_is_unchanged(tmp_path: Path) -> None:
    """Known answers: voxel hashes of a tiny default cohort written before pet_nuisance existed
    (seed 3, 30 subjects, native shape (12, 14, 12)); the marker and README do not name the knob."""
    import hashlib

    import nibabel as nib

    out = adni.write_synthetic_adni(tmp_path / "c", subjects=30, seed=3, native_shape=(12, 14, 12), oracle=False)
    digest = {name: hashlib.sha256(np.asarray(nib.load(out / "images" / name.split("_T1")[0].split("_FDG")[0]
                                                         / name).dataobj).tobytes()).hexdigest()[:16]
              for name in ("100_S_1000_FDG.nii.gz", "100_S_1000_T1.nii.gz", "101_S_1001_FDG.nii.gz")}
    assert digest == {"100_S_1000_FDG.nii.gz": "dd88a83bd8260507", "100_S_1000_T1.nii.gz": "add3103c424b71f0",
                      "101_S_1001_FDG.nii.gz": "017c6ea05d235167"}
    assert "pet_nuisance" not in json.loads((out / "SYNTHETIC_DATA.json").read_text())
    assert "pet_nuisance" not in (out / "README.md").read_text()


def test_adni_pet_nuisance_zero_leaves_only_the_planted_pattern(tmp_path: Path) -> None:
    grid = adni._grid((12, 14, 12))
    bank = adni._TextureBank(np.random.default_rng(0), (12, 14, 12))
    # no nuisance and no latent noise: the PET is a function of the severity alone
    quiet = [adni._pet(grid, 0.7, np.random.default_rng(s), bank, noise=0.0, nuisance=0.0) for s in (1, 2)]
    np.testing.assert_array_equal(quiet[0], quiet[1])
    assert not np.array_equal(quiet[0], adni._pet(grid, -0.7, np.random.default_rng(1), bank, 0.0, 0.0))
    loud = [adni._pet(grid, 0.7, np.random.default_rng(s), bank, noise=0.0) for s in (1, 2)]
    assert np.abs(loud[0] - loud[1]).mean() > 0.02
    # the writer: same draws for every value, so only the PET volumes (and marker, README) change
    a = adni.write_synthetic_adni(tmp_path / "a", subjects=12, seed=1, native_shape=(10, 12, 10), oracle=False,
                                  pet_from_mri=1.0)
    b = adni.write_synthetic_adni(tmp_path / "b", subjects=12, seed=1, native_shape=(10, 12, 10), oracle=False,
                                  pet_from_mri=1.0, pet_nuisance=0.0)
    assert (a / "ADNIMERGE.csv").read_bytes() == (b / "ADNIMERGE.csv").read_bytes()
    manifest = pd.read_csv(a / "manifest.csv", keep_default_na=False)
    import nibabel as nib

    mri = manifest["mri_path"][0]
    pet = next(p for p in manifest["pet_path"] if p)
    np.testing.assert_array_equal(nib.load(a / mri).get_fdata(), nib.load(b / mri).get_fdata())
    assert not np.array_equal(nib.load(a / pet).get_fdata(), nib.load(b / pet).get_fdata())
    assert json.loads((b / "SYNTHETIC_DATA.json").read_text())["pet_nuisance"] == 0.0
    assert "pet_nuisance=0.0" in (b / "README.md").read_text()
    with pytest.raises(ValueError, match="pet_nuisance"):
        adni.validate_knobs(pet_nuisance=-1.0)


def test_adni_pet_locality_moves_the_mri_contrast_onto_pets_regions(tmp_path: Path) -> None:
    """Known answer: the MRI difference between c = +2 and c = -2 (same draws otherwise) peaks in
    the periventricular region at pet_locality 0 and inside PET's hypometabolism regions at 1;
    the writer changes only the MRI volumes, and 0 is the cohort as written before the knob."""
    shape = (16, 20, 16)
    grid = adni._grid(shape)
    bank = adni._TextureBank(np.random.default_rng(0), shape)
    regions = adni._pet_regions(grid)
    periventricular = adni._blob(grid, (0.0, 0.35, 0.25), 0.12)

    def contrast(locality: float) -> np.ndarray:
        pair = [adni._mri(grid, 0.0, np.random.default_rng(5), bank, c, locality) for c in (2.0, -2.0)]
        return np.abs(pair[0] - pair[1])

    far, near = contrast(0.0), contrast(1.0)
    assert periventricular.flat[far.argmax()] > 0.5 and regions.flat[far.argmax()] < 0.05
    assert regions.flat[near.argmax()] > 0.5 and periventricular.flat[near.argmax()] < 0.05
    a = adni.write_synthetic_adni(tmp_path / "a", subjects=12, seed=1, native_shape=(10, 12, 10), oracle=False,
                                  pet_from_mri=1.0)
    b = adni.write_synthetic_adni(tmp_path / "b", subjects=12, seed=1, native_shape=(10, 12, 10), oracle=False,
                                  pet_from_mri=1.0, pet_locality=1.0)
    assert (a / "ADNIMERGE.csv").read_bytes() == (b / "ADNIMERGE.csv").read_bytes()
    import nibabel as nib

    manifest = pd.read_csv(a / "manifest.csv", keep_default_na=False)
    pet = next(p for p in manifest["pet_path"] if p)
    np.testing.assert_array_equal(nib.load(a / pet).get_fdata(), nib.load(b / pet).get_fdata())
    assert not np.array_equal(nib.load(a / manifest["mri_path"][0]).get_fdata(),
                              nib.load(b / manifest["mri_path"][0]).get_fdata())
    assert "pet_locality" not in json.loads((a / "SYNTHETIC_DATA.json").read_text())
    assert json.loads((b / "SYNTHETIC_DATA.json").read_text())["pet_locality"] == 1.0
    assert "pet_locality=1.0" in (b / "README.md").read_text()
    with pytest.raises(ValueError, match="pet_locality"):
        adni.validate_knobs(pet_locality=1.5)


@pytest.mark.parametrize("knob, value", [("pet_from_mri", 1.0), ("pet_nuisance", 0.25), ("pet_locality", 1.0),
                                         ("mri_latent_contrast", 0.4), ("label_noise", 1.0)])
def test_adni_study_refuses_a_cohort_written_with_another_knob_value(tmp_path: Path, knob: str, value: float) -> None:
    from robustmm.config.schema import AdniDataConfig
    from robustmm.data.registry import build_dataset
    from robustmm.errors import DataError

    root = adni.write_synthetic_adni(tmp_path / "c", subjects=20, seed=0, native_shape=(10, 12, 10), oracle=False)
    cfg = AdniDataConfig(root=root, synthetic={"subjects": 20, "seed": 0, "native_shape": [10, 12, 10], knob: value})
    with pytest.raises(DataError, match=knob):
        build_dataset(cfg, progress=False)


def test_adni_marker_written_before_the_knobs_means_their_defaults(tmp_path: Path) -> None:
    from robustmm.data.registry import check_synthetic_matches
    from robustmm.errors import DataError

    root = adni.write_synthetic_adni(tmp_path / "c", subjects=20, seed=0, native_shape=(10, 12, 10), oracle=False)
    marker = json.loads((root / "SYNTHETIC_DATA.json").read_text())
    for key in adni.KNOB_DEFAULTS:
        if key != "pet_missing":
            marker.pop(key, None)  # the quiet knobs are written only when not at their defaults
    (root / "SYNTHETIC_DATA.json").write_text(json.dumps(marker))
    check_synthetic_matches(root, {"version": adni.GENERATOR_VERSION, "pet_from_mri": 0.0, "pet_noise": 0.3},
                            defaults=adni.KNOB_DEFAULTS)
    with pytest.raises(DataError, match=r"other arguments: pet_from_mri 0.0 \(study: 0.5\)\. Delete") as err:
        check_synthetic_matches(root, {"pet_noise": 0.3, "pet_from_mri": 0.5}, defaults=adni.KNOB_DEFAULTS)
    assert "pet_noise" not in str(err.value)  # only what differs is named


def test_pet_from_mri_preset_loads() -> None:
    from robustmm.config.loader import load_study

    repo = Path(__file__).resolve().parents[1]
    cfg = load_study(repo / "studies" / "adni_mci_pet_from_mri.yaml")
    assert cfg.data.synthetic.pet_from_mri == 1.0 and "pet_from_mri" in str(cfg.data.root)


# ------------------------------------------------------------------------------------ MMSA
SMALL = dict(seq_len=12, dims=(8, 5, 6), seed=3, oracle=False)


def _load(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _bias_ids(split: dict) -> np.ndarray:
    ids = split["text_bert"][:, 0]
    return np.isin(ids, mmsa.BIAS_WORDS_POSITIVE + mmsa.BIAS_WORDS_NEGATIVE)


def _agreement(split: dict) -> float:
    """Share of bias words (in samples with y != 0) from the pool matching the label's sign."""
    ids, y = split["text_bert"][:, 0], split["regression_labels"]
    pos = np.isin(ids, mmsa.BIAS_WORDS_POSITIVE).sum(1)
    neg = np.isin(ids, mmsa.BIAS_WORDS_NEGATIVE).sum(1)
    match = np.where(y > 0, pos, neg)[y != 0].sum()
    return float(match / max((pos + neg)[y != 0].sum(), 1))


def test_mmsa_validation_is_in_distribution_unless_asked(tmp_path: Path) -> None:
    n = dict(n_train=200, n_valid=200, n_test=200)
    default = _load(mmsa.write_synthetic_mmsa(tmp_path / "a" / "x.pkl", **n, **SMALL))
    shifted = _load(mmsa.write_synthetic_mmsa(tmp_path / "b" / "x.pkl", validation="shifted", **n, **SMALL))
    # strength 0.8 in train: 0.8 + 0.2 * 0.5 = 0.9 of bias words match; strength 0 in test: 0.5
    assert _agreement(default["train"]) > 0.8 and _agreement(default["valid"]) > 0.8
    assert _agreement(default["test"]) < 0.6
    assert _agreement(shifted["valid"]) < 0.6
    np.testing.assert_array_equal(default["test"]["text_bert"], shifted["test"]["text_bert"])


def test_mmsa_shortcut_words_train_only_are_absent_from_test(tmp_path: Path) -> None:
    n = dict(n_train=60, n_valid=30, n_test=60)
    every = _load(mmsa.write_synthetic_mmsa(tmp_path / "a" / "x.pkl", **n, **SMALL))
    only = _load(mmsa.write_synthetic_mmsa(tmp_path / "b" / "x.pkl", shortcut_words="train_only", **n, **SMALL))
    assert _bias_ids(every["test"]).any() and not _bias_ids(only["test"]).any()
    assert _bias_ids(only["train"]).sum(1).min() == 2 and _bias_ids(only["valid"]).any()
    shifted = _load(mmsa.write_synthetic_mmsa(tmp_path / "c" / "x.pkl", shortcut_words="train_only",
                                              validation="shifted", **n, **SMALL))
    assert not _bias_ids(shifted["valid"]).any()
    oracle = mmsa.oracle_ceilings(seed=0, n=6000, seq_len=12, shortcut_words="train_only")["shortcut"]
    assert oracle["text+shortcut_fit_train_score_test"] == pytest.approx(oracle["text_fit_train_score_test"], abs=0.01)


def test_mmsa_shortcut_strength_relative_to_sentiment_words(tmp_path: Path) -> None:
    n = dict(n_train=80, n_valid=10, n_test=10)
    data = _load(mmsa.write_synthetic_mmsa(tmp_path / "a" / "x.pkl", bias_words_per_sample=4, sentiment_word_rate=0.0,
                                           **n, **SMALL))
    n_words = data["train"]["text_bert"][:, 1].sum(1) - 2  # real tokens minus [CLS] and [SEP]
    np.testing.assert_array_equal(_bias_ids(data["train"]).sum(1), np.minimum(4, n_words))
    ids = data["train"]["text_bert"][:, 0]
    assert not np.isin(ids, mmsa.POSITIVE_WORDS + mmsa.NEGATIVE_WORDS).any()
    strong = mmsa.oracle_ceilings(seed=0, n=6000, seq_len=12, bias_words_per_sample=4)["shortcut"]
    weak = mmsa.oracle_ceilings(seed=0, n=6000, seq_len=12, bias_words_per_sample=1, bias_strength_train=0.3,
                                sentiment_word_rate=0.4)["shortcut"]
    assert strong["shortcut_only_train_split"] > strong["sentiment_words_only_train_split"] + 0.1
    assert weak["shortcut_only_train_split"] < weak["sentiment_words_only_train_split"]
    # leaning on a strong shortcut costs test accuracy; the oracle says how much
    assert strong["text+shortcut_fit_train_score_test"] < strong["text_fit_train_score_test"] - 0.05


def test_mmsa_signal_fraction_sets_how_much_signal_survives_dropout(tmp_path: Path) -> None:
    n = dict(n_train=80, n_valid=5, n_test=5)
    common = dict(view_noise={"audio": 0.0}, **n, **SMALL)

    def loud_frames(f: float) -> float:
        data = _load(mmsa.write_synthetic_mmsa(tmp_path / f"f{f}" / "x.pkl", signal_fraction={"audio": f}, **common))
        rng = np.random.default_rng(SMALL["seed"])  # the writer's first draws: text, then audio direction
        rng.normal(size=SMALL["dims"][0])
        d_a = 2.0 * rng.normal(size=SMALL["dims"][1])
        proj = data["train"]["audio"] @ (d_a / np.linalg.norm(d_a))   # (N, T)
        y = data["train"]["regression_labels"]
        real = np.abs(data["train"]["audio"]).sum(-1) > 0
        big = np.abs(y) >= 2.0
        return float((np.abs(proj) > 1.5)[big][real[big]].mean())

    assert loud_frames(1.0) > 0.8
    assert loud_frames(0.25) < 0.5
    full = mmsa.oracle_ceilings(seed=0, n=6000, seq_len=12)["rmfm"]
    sparse = mmsa.oracle_ceilings(seed=0, n=6000, seq_len=12, signal_fraction={"audio": 0.1})["rmfm"]
    assert abs(full["0"]["audio"] - sparse["0"]["audio"]) < 0.03     # same information on complete data
    assert full["0.9"]["audio"] - sparse["0.9"]["audio"] > 0.05      # but it does not survive dropout


def _array_digest(data: dict) -> str:
    import hashlib

    h = hashlib.sha256()
    for split in ("train", "valid", "test"):
        for key in sorted(data[split]):
            value = data[split][key]
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else "|".join(value).encode())
    return h.hexdigest()


def test_mmsa_defaults_reproduce_the_version_2_files(tmp_path: Path) -> None:
    # digest of this exact call written by the generator before label_flip / word_echo existed
    n = dict(n_train=30, n_valid=10, n_test=10)
    plain = _load(mmsa.write_synthetic_mmsa(tmp_path / "a" / "x.pkl", **n, **SMALL))
    explicit = _load(mmsa.write_synthetic_mmsa(tmp_path / "b" / "x.pkl", label_flip=0.0,
                                               word_echo={"audio": 0.0, "vision": 0.0}, **n, **SMALL))
    assert _array_digest(plain) == "1bc6063d45af73f46b71e8c123e20062fbce75ccfd02c31631bb718350f43af8"
    assert _array_digest(explicit) == _array_digest(plain)


def test_mmsa_label_flip_flips_train_and_valid_signs_only(tmp_path: Path) -> None:
    n = dict(n_train=400, n_valid=200, n_test=100)
    clean = _load(mmsa.write_synthetic_mmsa(tmp_path / "a" / "x.pkl", **n, **SMALL))
    noisy = _load(mmsa.write_synthetic_mmsa(tmp_path / "b" / "x.pkl", label_flip=0.3, **n, **SMALL))
    for split in ("train", "valid", "test"):
        for key in ("text", "text_bert", "audio", "vision"):  # inputs are those of the clean file
            np.testing.assert_array_equal(noisy[split][key], clean[split][key])
        y, y_noisy = clean[split]["regression_labels"], noisy[split]["regression_labels"]
        np.testing.assert_array_equal(np.abs(y_noisy), np.abs(y))  # magnitude and neutral labels kept
        flipped = (y_noisy != y)[y != 0].mean()
        if split == "test":
            assert flipped == 0.0
        else:
            assert 0.22 < flipped < 0.38, flipped  # 0.3 of the non-neutral labels, binomial spread
        c = noisy[split]["classification_labels"]
        np.testing.assert_array_equal(c, np.where(y_noisy < 0, 0, np.where(y_noisy == 0, 1, 2)))
    with pytest.raises(ValueError, match="label_flip"):
        mmsa.validate_knobs(label_flip=0.5)


def test_mmsa_word_echo_puts_each_sentiment_word_on_its_aligned_frame(tmp_path: Path) -> None:
    n = dict(n_train=60, n_valid=5, n_test=5)
    plain = _load(mmsa.write_synthetic_mmsa(tmp_path / "a" / "x.pkl", **n, **SMALL))
    echo = _load(mmsa.write_synthetic_mmsa(tmp_path / "b" / "x.pkl", word_echo={"audio": 0.5}, **n, **SMALL))
    rng = np.random.default_rng(SMALL["seed"])  # the writer's first draws: text, then audio direction
    rng.normal(size=SMALL["dims"][0])
    d_a = 2.0 * rng.normal(size=SMALL["dims"][1])
    e_a = mmsa.echo_directions(SMALL["seed"], {"audio": d_a, "vision": np.ones(SMALL["dims"][2])})["echo_audio"]
    assert abs(e_a @ d_a) < 1e-4 * (d_a @ d_a) and np.linalg.norm(e_a) == pytest.approx(np.linalg.norm(d_a), rel=1e-5)
    ids = plain["train"]["text_bert"][:, 0]
    polarity = np.isin(ids, mmsa.POSITIVE_WORDS).astype(float) - np.isin(ids, mmsa.NEGATIVE_WORDS)
    assert (polarity != 0).sum() > 20
    # exactly the echo on sentiment-word frames, nothing elsewhere; vision and text untouched
    np.testing.assert_allclose(echo["train"]["audio"] - plain["train"]["audio"],
                               0.5 * polarity[..., None] * e_a, atol=1e-5)
    np.testing.assert_array_equal(echo["train"]["vision"], plain["train"]["vision"])
    np.testing.assert_array_equal(echo["train"]["text_bert"], plain["train"]["text_bert"])
    with pytest.raises(ValueError, match="aligned"):
        mmsa.write_synthetic_mmsa(tmp_path / "c" / "x.pkl", aligned=False, word_echo={"audio": 0.5}, **n, **SMALL)


def test_mmsa_study_reads_the_new_knobs_and_older_markers(tmp_path: Path) -> None:
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import build_dataset
    from robustmm.errors import DataError

    synth = dict(n_train=12, n_valid=5, n_test=6, seq_len=8, dims=[6, 3, 4], seed=2, word_echo={"audio": 1.0},
                 label_flip=0.2, sentiment_vocab=40)
    cfg = GenericDataConfig(kind="mmsa", root=tmp_path / "m", options={}, synthetic=synth)
    build_dataset(cfg, progress=False)
    marker = json.loads((tmp_path / "m" / "SYNTHETIC_DATA.json").read_text())
    assert marker["word_echo"] == {"audio": 1.0, "vision": 0.0} and marker["label_flip"] == 0.2
    build_dataset(cfg, progress=False)  # same arguments: reused
    other = GenericDataConfig(kind="mmsa", root=tmp_path / "m", options={}, synthetic={**synth, "label_flip": 0.0})
    with pytest.raises(DataError, match="label_flip"):
        build_dataset(other, progress=False)
    # a marker written before these knobs existed describes a file at their defaults
    plain = dict(n_train=12, n_valid=5, n_test=6, seq_len=8, dims=[6, 3, 4], seed=2)
    cfg = GenericDataConfig(kind="mmsa", root=tmp_path / "p", options={}, synthetic=plain)
    build_dataset(cfg, progress=False)
    path = tmp_path / "p" / "SYNTHETIC_DATA.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("label_flip", "word_echo", "sentiment_vocab")}
    path.write_text(json.dumps(old))
    build_dataset(cfg, progress=False)


def test_mmsa_study_refuses_a_file_of_another_version(tmp_path: Path) -> None:
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import build_dataset
    from robustmm.errors import DataError

    synth = dict(n_train=12, n_valid=5, n_test=6, seq_len=8, dims=[6, 3, 4], seed=2)
    cfg = GenericDataConfig(kind="mmsa", root=tmp_path / "m", options={}, synthetic=synth)
    build_dataset(cfg, progress=False)
    marker_path = tmp_path / "m" / "SYNTHETIC_DATA.json"
    assert json.loads(marker_path.read_text())["oracle"]["metric"] == "Non0_acc_2"
    build_dataset(cfg, progress=False)  # same arguments: reused
    marker = json.loads(marker_path.read_text())
    marker.pop("version")  # a version-1 file (valid split drawn like test)
    marker_path.write_text(json.dumps(marker))
    with pytest.raises(DataError, match="version"):
        build_dataset(cfg, progress=False)


# ------------------------------------------------------------------------------------ TCGA
def test_concordance_matches_lifelines() -> None:
    from robustmm.metrics.survival import concordance

    rng = np.random.default_rng(0)
    t, e, r = rng.exponential(size=700), (rng.random(700) < 0.6).astype(float), np.round(rng.normal(size=700), 1)
    assert concordance_of(t, e, r, block=64) == pytest.approx(concordance(t, e, r), abs=1e-12)


def test_porpoise_shared_and_signal_knobs() -> None:
    shared = tcga.oracle_ceilings_porpoise(0, n=8000)["ceilings"]
    own = tcga.oracle_ceilings_porpoise(0, n=8000, shared=0.0)["ceilings"]
    silent = tcga.oracle_ceilings_porpoise(0, n=8000, signal={"rnaseq": 0.0})["ceilings"]
    # shared = 1: one group alone nearly reaches all groups; shared = 0: each holds only its third
    assert shared["rnaseq+cnv+mut"] - shared["rnaseq"] < 0.03
    assert own["rnaseq+cnv+mut"] - own["rnaseq"] > 0.05
    assert silent["rnaseq"] == pytest.approx(0.5, abs=0.02)
    assert silent["cnv"] == pytest.approx(shared["cnv"], abs=0.02)


def test_porpoise_writer_signal_knob_silences_a_group(tmp_path: Path) -> None:
    def corr(signal):
        path = tcga.write_synthetic_porpoise(tmp_path / str(signal) / "t.csv.zip", 400, 1, signal=signal, oracle=False)
        with zipfile.ZipFile(path) as z:
            frame = pd.read_csv(StringIO(z.read(z.namelist()[0]).decode())).drop_duplicates("case_id")
        return abs(np.corrcoef(frame["G000_rnaseq"], frame["age"])[0, 1]), abs(np.corrcoef(frame["G000_cnv"],
                                                                                         frame["age"])[0, 1])
    rna_on, cnv_on = corr(None)
    rna_off, cnv_off = corr({"rnaseq": 0.0})
    assert rna_on > 0.15 and rna_off < 0.1 and cnv_off > 0.15


def test_dispro_risk_weights(tmp_path: Path) -> None:
    root = tcga.write_synthetic_dispro(tmp_path / "d", 30, 3, 0, risk_weights={"shared": 0.0, "wsi": 2.0})
    truth = pd.read_csv(root / "truth.csv")
    np.testing.assert_allclose(truth["risk"], (truth["z_omics"] + 2 * truth["z_wsi"]) / np.sqrt(5), atol=1e-9)
    ceil = json.loads((root / "SYNTHETIC_DATA.json").read_text())["oracle"]["ceilings"]
    assert ceil["wsi"] > ceil["omics"] + 0.05


# ------------------------------------------------------------------------------------ BraTS
def test_brats_visible_in_hides_a_region_from_other_sequences(tmp_path: Path) -> None:
    import nibabel as nib

    root = brats.write_synthetic_brats(tmp_path / "b", 1, (24, 24, 24), seed=1,
                                       visible_in={"oedema": ["flair"]}, oracle=False)
    case = next(p for p in root.iterdir() if p.is_dir())
    load = lambda s: np.asarray(nib.load(next(case.glob(f"*_{s}.nii.gz"))).dataobj, dtype=float)  # noqa: E731
    seg = load("seg")
    brain = load("t1") > 0
    normal = brain & (seg == 0)
    oedema = seg == 2
    ratio = {s: load(s)[oedema].mean() / load(s)[normal].mean() for s in ("flair", "t2")}
    assert ratio["flair"] > 1.4       # FLAIR still shows oedema
    # T2 without oedema contrast: ~ parenchyma (CSF, bright in T2, lifts the normal mean a little)
    assert ratio["t2"] < 1.1
    hidden = brats.oracle_intensity_dice(0, n=6000, visible_in={"oedema": ["flair"]})["ceilings"]
    default = brats.oracle_intensity_dice(0, n=6000)["ceilings"]
    assert default["t2"]["WT"] - hidden["t2"]["WT"] > 0.3


# ------------------------------------------------------------------------------------ report
def test_data_report_carries_the_oracle(tmp_path: Path) -> None:
    from robustmm.data.base import synthetic_oracle
    from robustmm.study import data_report

    folder = tmp_path / "syn"
    folder.mkdir()
    (folder / "SYNTHETIC_DATA.json").write_text(json.dumps({"synthetic": True, "oracle": {"ceilings": {"a": 0.7}}}))
    assert synthetic_oracle(folder / "file.pkl") == {"ceilings": {"a": 0.7}}
    assert synthetic_oracle(tmp_path) is None

    class _DS:
        root, synthetic = folder, True

        def __len__(self):
            return 3

        def natural_presence(self):
            return {"a": np.ones(3, bool)}

    splits = SimpleNamespace(as_dict=lambda: {"train": [0, 1], "test": [2]})
    data = SimpleNamespace(dataset=_DS(), splits=splits, modalities={})
    assert data_report(data)["oracle"]["ceilings"] == {"a": 0.7}


def test_adni_mri_latent_contrast_scales_only_the_mri_contrast_of_c(tmp_path: Path) -> None:
    import nibabel as nib

    """The MRI of two cohorts that differ only in mri_latent_contrast differ by the c contrast, in
    proportion to c (before the global scale and voxel noise, which draw the same numbers); PET
    volumes and the table are byte-identical; the default is not written to the marker."""
    kw = dict(subjects=12, seed=0, native_shape=(10, 12, 10), oracle=False, pet_from_mri=1.0)
    a = adni.write_synthetic_adni(tmp_path / "a", **kw)
    b = adni.write_synthetic_adni(tmp_path / "b", mri_latent_contrast=0.36, **kw)
    assert (a / "ADNIMERGE.csv").read_bytes() == (b / "ADNIMERGE.csv").read_bytes()
    for pet in (a / "images").rglob("*_FDG.nii.gz"):
        assert pet.read_bytes() == (b / pet.relative_to(a)).read_bytes()
    c = np.random.default_rng([0, 1]).standard_normal(12)
    changes = []
    for mri in sorted((a / "images").rglob("*_T1.nii.gz")):
        i = int(mri.parent.name.split("_S_")[1]) - 1000  # PTIDs number the subjects from 1000
        x = nib.load(mri).get_fdata()
        y = nib.load(b / mri.relative_to(a)).get_fdata()
        inside = (x > 0) & (y > 0)  # away from the clip at 0
        change = float((y - x)[inside].sum())
        assert np.sign(change) == np.sign(c[i])  # the contrast follows c's sign
        changes.append(change / float(np.clip(c[i], -3, 3)))
        assert (np.abs(y - x)[inside] > 1e-4).mean() < 0.2  # a local contrast, not the whole volume
    # the same integrated contrast per unit of c for every subject, up to the subject's global
    # intensity scale (0.8-1.25) and where its registration shift puts the region on the grid
    assert max(changes) / min(changes) < 1.8
    assert "mri_latent_contrast" not in json.loads((a / "SYNTHETIC_DATA.json").read_text())
    assert json.loads((b / "SYNTHETIC_DATA.json").read_text())["mri_latent_contrast"] == 0.36
    with pytest.raises(ValueError, match="mri_latent_contrast"):
        adni.validate_knobs(mri_latent_contrast=-0.1)


def test_adni_label_noise_changes_only_who_converts(tmp_path: Path) -> None:
    """Two cohorts differing only in label_noise have the same volumes and the same table apart from
    the diagnoses after baseline; with no noise pMCI is exactly z > 0.25, so PET's FDG summary (a
    noisy read-out of z) ranks the labels better than with much noise, on the same subjects."""
    import pandas as pd

    from robustmm.metrics.classification import auc_score

    kw = dict(subjects=300, seed=3, native_shape=(8, 10, 8), oracle=False, pet_missing=0.0)
    a = adni.write_synthetic_adni(tmp_path / "a", label_noise=0.0, **kw)
    b = adni.write_synthetic_adni(tmp_path / "b", label_noise=2.0, **kw)
    for image in (a / "images").rglob("*.nii.gz"):
        assert image.read_bytes() == (b / image.relative_to(a)).read_bytes()
    ta, tb = pd.read_csv(a / "ADNIMERGE.csv"), pd.read_csv(b / "ADNIMERGE.csv")
    assert ta.drop(columns="DX").equals(tb.drop(columns="DX"))
    assert not ta["DX"].equals(tb["DX"])

    def fdg_auc(table):
        last = table[table["M"] <= 36].sort_values("M").groupby("RID").last()
        baseline = table[table["M"] == 0].set_index("RID")
        mci = baseline["DX"] == "MCI"
        followed = table.groupby("RID")["M"].max() >= 36
        keep = mci & followed
        converted = (last["DX"] == "Dementia")[keep].astype(int).to_numpy()
        return auc_score(converted, -baseline["FDG"][keep].to_numpy())

    assert fdg_auc(ta) > 0.9 > fdg_auc(tb) + 0.1
    assert "label_noise" not in json.loads((adni.write_synthetic_adni(tmp_path / "d", **kw) / "SYNTHETIC_DATA.json")
                                           .read_text())
    assert json.loads((b / "SYNTHETIC_DATA.json").read_text())["label_noise"] == 2.0
    assert "label_noise=2.0" in (b / "README.md").read_text()
    with pytest.raises(ValueError, match="label_noise"):
        adni.validate_knobs(label_noise=-0.1)


# ------------------------------------------------------- options the generators cannot use

_UNUSABLE = [
    ("brats", {"shape": [6, 24, 24]}, "data.synthetic.shape.0"),
    ("dispro", {"patches": [60, 20]}, "data.synthetic.patches': give [min, max] with 1 <= min <= max"),
    ("dispro", {"genes_per_pathway": [12, 3]}, "data.synthetic.genes_per_pathway': give [min, max]"),
    ("dispro", {"patients": 10, "folds": 6}, "10 patients are too few for 6 folds"),
    ("dispro", {"wsi_missing": 0.6, "omics_missing": 0.6}, "wsi_missing + omics_missing = 1.2"),
    ("mmsa", {"audio_len": 7}, "aligned files have one audio/vision frame per token"),
    ("mmsa", {"aligned": False, "word_echo": {"audio": 1.0}}, "word_echo needs aligned: true"),
    ("mmsa", {"dims": [0, 5, 20]}, "data.synthetic.dims.0"),
]


@pytest.mark.parametrize("kind,synthetic,said", _UNUSABLE)
def test_synthetic_options_the_generator_cannot_use_are_a_config_error(kind: str, synthetic: dict, said: str) -> None:
    from robustmm.data.registry import check_data_options
    from robustmm.errors import ConfigError

    with pytest.raises(ConfigError, match=f"data \\(kind {kind}\\)") as err:
        check_data_options(SimpleNamespace(kind=kind, synthetic=synthetic))
    assert said in str(err.value)


@pytest.mark.parametrize("kind,options,said", [
    ("brats", {"spatial_size": [16, 16]}, "data.options.spatial_size"),
    ("brats", {"label_convention": "2021"}, "data.options.label_convention"),
    ("mmsa", {"target": "class5"}, "data.options.target"),
    ("tcga_porpoise", {"cohortt": "blca"}, "data.options.cohortt"),
    ("table", {"nan_policy": "drop"}, "data.options.nan_policy"),
])
def test_data_options_are_checked_when_the_study_is_read(kind: str, options: dict, said: str) -> None:
    from robustmm.data.registry import check_data_options
    from robustmm.errors import ConfigError

    with pytest.raises(ConfigError, match=f"data \\(kind {kind}\\)") as err:
        check_data_options(SimpleNamespace(kind=kind, options=options, synthetic=None))
    assert said in str(err.value)


def test_bounded_synthetic_values_are_ones_the_generators_refuse(tmp_path: Path) -> None:
    """The bounds are the generators' own limits: these values fail there too, and shape 8 works."""
    with pytest.raises(ValueError, match="shape must be three sizes >= 8"):
        brats.write_synthetic_brats(tmp_path / "b", 4, (6, 24, 24))
    brats.write_synthetic_brats(tmp_path / "b8", 1, (8, 8, 8), oracle=False)  # the bound itself is usable
    for patches, genes in (((60, 20), (3, 12)), ((2, 4), (12, 3))):
        with pytest.raises(ValueError):
            tcga.write_synthetic_dispro(tmp_path / "d", 20, 2, 0, 8, patches, 3, genes, 0, 0)
    with pytest.raises(ValueError, match="2 patients per fold"):
        tcga.write_synthetic_dispro(tmp_path / "d", 10, 6, 0, 8, (2, 4), 3, (3, 4), 0, 0)
    with pytest.raises(ValueError, match="aligned files"):
        mmsa.write_synthetic_mmsa(tmp_path / "m.pkl", n_train=10, n_valid=5, n_test=5, audio_len=7)


def test_a_brats_study_with_a_too_small_synthetic_shape_stops_before_any_folder(tmp_path: Path) -> None:
    from robustmm.config.loader import load_study
    from robustmm.errors import ConfigError
    from robustmm.study import run_study

    repo = Path(__file__).resolve().parents[1]
    cfg = load_study(repo / "studies" / "brats_missing.yaml",
                     overrides=["data.synthetic.shape=[6,24,24]", "data.synthetic.cases=4",
                                f"data.root={tmp_path / 'brats'}"])
    with pytest.raises(ConfigError, match=r"'data.synthetic.shape.0': Input should be greater than or equal to 8"):
        run_study(cfg, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "brats").exists() and not (tmp_path / "run").exists()


def test_a_synthetic_folder_written_with_other_settings_is_refused_before_a_run_folder_is_made(
        tmp_path: Path, capsys) -> None:
    # the loader refused it, after the run folder had been made
    from robustmm.cli import main
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import check_data_root
    from robustmm.errors import DataError

    root = adni.write_synthetic_adni(tmp_path / "adni", subjects=20, seed=0, native_shape=(10, 12, 10), oracle=False)
    study = Path(__file__).resolve().parents[1] / "studies" / "adni_mci.yaml"
    runs = tmp_path / "runs"
    command = ["run", str(study), "--quiet", "--set", f"data.root={root}", "--set", f"output_dir={runs}"]
    assert main([*command, "--set", "data.synthetic={subjects: 24, seed: 0, native_shape: [10, 12, 10]}"]) == 2
    err = capsys.readouterr().err
    assert f"{root} holds a synthetic cohort generated with other arguments: subjects 20 (study: 24)" in err
    assert not runs.exists()

    cases = brats.write_synthetic_brats(tmp_path / "brats", 4, (16, 16, 16), seed=0)
    check_data_root(GenericDataConfig(kind="brats", root=cases, synthetic={"cases": 4, "shape": [16, 16, 16]}))
    with pytest.raises(DataError, match=r"other arguments: n_cases 4 \(study: 5\)"):
        check_data_root(GenericDataConfig(kind="brats", root=cases, synthetic={"cases": 5, "shape": [16, 16, 16]}))

"""MMSA pickle loader and the synthetic MMSA writer."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from robustmm.data.base import SYNTHETIC_MARKER
from robustmm.data.batch import collate
from functools import partial

from robustmm.data.mmsa import MMSADataset as _MMSADataset
from robustmm.data.synth.mmsa import (BIAS_WORDS_NEGATIVE, BIAS_WORDS_POSITIVE, CLS_ID, SEP_ID,
                                      write_synthetic_mmsa)
from robustmm.errors import DataError

# these tests edit pickles they wrote themselves, so opening them is safe (tests/test_security.py
# covers the default refusal)
MMSADataset = partial(_MMSADataset, trust_pickle=True)

SMALL = dict(n_train=24, n_valid=8, n_test=10, seq_len=12, dims=(8, 5, 6))


@pytest.fixture(scope="module")
def aligned_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mmsa(tmp_path_factory.mktemp("al") / "aligned_50.pkl", aligned=True, **SMALL)


@pytest.fixture(scope="module")
def unaligned_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mmsa(tmp_path_factory.mktemp("un") / "unaligned_50.pkl", aligned=False,
                                audio_len=30, vision_len=40, **SMALL)


def _load(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _edited(src: Path, dst_dir: Path, edit: Callable[[dict], None]) -> Path:
    data = _load(src)
    edit(data)
    dst = dst_dir / "edited.pkl"
    with open(dst, "wb") as fh:
        pickle.dump(data, fh)
    return dst


# ---------------------------------------------------------------- synthetic writer
def test_writer_layout_dtypes_and_marker(aligned_file: Path, unaligned_file: Path) -> None:
    for path, aligned in ((aligned_file, True), (unaligned_file, False)):
        data = _load(path)
        assert set(data) == {"train", "valid", "test"}
        for key, n in (("train", 24), ("valid", 8), ("test", 10)):
            s = data[key]
            assert len(s["id"]) == len(s["raw_text"]) == n and "$_$" in s["id"][0]
            assert s["text"].shape == (n, 12, 8) and s["text"].dtype == np.float32
            assert s["text_bert"].shape == (n, 3, 12) and s["text_bert"].dtype == np.int64
            assert s["regression_labels"].dtype == np.float32 and s["regression_labels"].shape == (n,)
            assert np.abs(s["regression_labels"]).max() <= 3.0
            t_a, t_v = (12, 12) if aligned else (30, 40)
            assert s["audio"].shape == (n, t_a, 5) and s["vision"].shape == (n, t_v, 6)
            assert ("audio_lengths" in s) == (not aligned) and ("vision_lengths" in s) == (not aligned)
            expected_cls = np.where(s["regression_labels"] < 0, 0, np.where(s["regression_labels"] == 0, 1, 2))
            np.testing.assert_array_equal(s["classification_labels"], expected_cls)
            ids, mask = s["text_bert"][:, 0], s["text_bert"][:, 1]
            for i in range(n):
                L = int(mask[i].sum())
                assert mask[i, :L].all() and not mask[i, L:].any()  # mask is a prefix
                assert ids[i, 0] == CLS_ID and ids[i, L - 1] == SEP_ID and (ids[i, L:] == 0).all()
                assert (s["text"][i, L:] == 0).all() and (np.abs(s["text"][i, :L]).sum(1) > 0).all()
        marker = json.loads((path.parent / SYNTHETIC_MARKER).read_text())
        assert marker["synthetic"] is True and marker["aligned"] is aligned
        assert "bias words" in (path.parent / f"{path.stem}.README.md").read_text().lower()
    # some neutral samples are exactly zero
    labels = np.concatenate([_load(aligned_file)[k]["regression_labels"] for k in ("train", "valid", "test")])
    assert (labels == 0).any() and (labels > 0).any() and (labels < 0).any()


def test_writer_deterministic(tmp_path: Path) -> None:
    a = _load(write_synthetic_mmsa(tmp_path / "a" / "x.pkl", seed=3, **SMALL))
    b = _load(write_synthetic_mmsa(tmp_path / "b" / "x.pkl", seed=3, **SMALL))
    c = _load(write_synthetic_mmsa(tmp_path / "c" / "x.pkl", seed=4, **SMALL))
    for key in ("text", "text_bert", "audio", "vision", "regression_labels"):
        np.testing.assert_array_equal(a["test"][key], b["test"][key])
    assert a["train"]["id"] == b["train"]["id"]
    assert not np.array_equal(a["train"]["audio"], c["train"]["audio"])


def test_writer_plants_signal_and_bias(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    path = write_synthetic_mmsa(tmp_path / "s.pkl", n_train=400, n_valid=20, n_test=400, seq_len=20,
                                dims=(16, 5, 20), seed=1, bias_strength_train=0.9, bias_strength_test=0.0)
    data = _load(path)

    def pooled(s: dict, m: str) -> np.ndarray:
        x = s[m]
        real = np.abs(x).sum(-1) > 0
        return (x * real[..., None]).sum(1) / np.maximum(real.sum(1, keepdims=True), 1)

    def bias_counts(s: dict) -> np.ndarray:
        ids = s["text_bert"][:, 0]
        return np.stack([np.isin(ids, BIAS_WORDS_POSITIVE).sum(1), np.isin(ids, BIAS_WORDS_NEGATIVE).sum(1)], 1)

    def score(feats: Callable[[dict], np.ndarray]) -> float:
        tr, te = data["train"], data["test"]
        ktr, kte = tr["regression_labels"] != 0, te["regression_labels"] != 0
        clf = LogisticRegression(max_iter=1000).fit(feats(tr)[ktr], tr["regression_labels"][ktr] > 0)
        return clf.score(feats(te)[kte], te["regression_labels"][kte] > 0)

    single = {m: score(lambda s, m=m: pooled(s, m)) for m in ("text", "audio", "vision")}
    both = score(lambda s: np.concatenate([pooled(s, m) for m in ("text", "audio", "vision")], 1))
    assert all(0.6 < v < 0.95 for v in single.values()), single  # partial signal in each modality
    assert both > max(single.values()), (both, single)            # fusion helps
    # bias words predict the label in train (strength 0.9) but carry nothing at test (0.0)
    tr = data["train"]
    counts, y = bias_counts(tr), tr["regression_labels"]
    agree = np.mean((counts[y > 0, 0] > counts[y > 0, 1]))
    assert agree > 0.75
    assert 0.35 < score(bias_counts) < 0.65


# ---------------------------------------------------------------- loader: good files
def test_aligned_ids_mode(aligned_file: Path) -> None:
    ds = MMSADataset(aligned_file, text_mode="ids", target="regression")
    raw = _load(aligned_file)
    assert len(ds) == 42 and ds.aligned
    spec = ds.modalities["text"]
    assert spec.kind == "tokens" and spec.shape == (12,) and spec.special_ids == (101, 102)
    assert spec.unk_id == 100 and spec.pad_id == 0
    assert ds.modalities["audio"].shape == (12, 5) and ds.modalities["vision"].shape == (12, 6)
    assert ds.task.kind == "regression" and ds.task.num_classes == 1

    splits = ds.predefined_splits()
    assert splits == {"train": list(range(24)), "val": list(range(24, 32)), "test": list(range(32, 42))}
    s = ds[26]  # valid row 2
    v = raw["valid"]
    torch.testing.assert_close(s["inputs"]["text"], torch.as_tensor(v["text_bert"][2, 0]))
    assert s["inputs"]["text"].dtype == torch.long
    mask = torch.as_tensor(v["text_bert"][2, 1] == 1)
    assert torch.equal(s["valid"]["text"], mask)
    # aligned audio/vision have the text length, so they follow the text attention mask
    assert torch.equal(s["valid"]["audio"], mask) and torch.equal(s["valid"]["vision"], mask)
    assert s["present"] == {"text": True, "audio": True, "vision": True}
    assert s["target"].dtype == torch.float32 and s["target"].item() == pytest.approx(float(v["regression_labels"][2]))
    assert s["meta"] == {"subject": v["id"][2], "split": "val", "regression_label": pytest.approx(float(v["regression_labels"][2])),
                         "raw_text": v["raw_text"][2]}
    assert ds.subject_ids()[26] == v["id"][2]
    np.testing.assert_array_equal(ds.token_ids("val"), v["text_bert"][:, 0])
    np.testing.assert_array_equal(ds.token_ids("valid"), v["text_bert"][:, 0])
    assert ds.synthetic

    batch = collate([ds[i] for i in range(4)])
    assert batch.inputs["text"].shape == (4, 12) and batch.target.shape == (4,)
    assert torch.equal(batch.feature_mask["text"], batch.valid["text"])


def test_features_mode_with_and_without_text_bert(aligned_file: Path, tmp_path: Path) -> None:
    ds = MMSADataset(aligned_file, text_mode="features")
    raw = _load(aligned_file)
    assert ds.modalities["text"].kind == "sequence" and ds.modalities["text"].shape == (12, 8)
    s = ds[0]
    np.testing.assert_array_equal(s["inputs"]["text"].numpy(), raw["train"]["text"][0])
    assert torch.equal(s["valid"]["text"], torch.as_tensor(raw["train"]["text_bert"][0, 1] == 1))

    def drop_bert(d: dict) -> None:
        for k in d:
            del d[k]["text_bert"]

    no_bert = MMSADataset(_edited(aligned_file, tmp_path, drop_bert), text_mode="features")
    # synthetic padding rows are all zero, real rows are not: the same mask comes back
    assert torch.equal(no_bert[0]["valid"]["text"], s["valid"]["text"])
    with pytest.raises(DataError, match=r"split 'train', key 'text_bert'"):
        no_bert.token_ids("train")
    with pytest.raises(DataError, match=r"text_bert"):
        MMSADataset(tmp_path / "edited.pkl", text_mode="ids")


def test_target_mappings(aligned_file: Path, tmp_path: Path) -> None:
    values = [-3.0, -0.4, 0.0, 0.5, 2.6]

    def set_labels(d: dict) -> None:
        d["train"]["regression_labels"][:5] = values

    path = _edited(aligned_file, tmp_path, set_labels)
    expected = {
        "class3": ([0, 0, 1, 2, 2], 3),
        "class7": ([0, 3, 3, 3, 6], 7),  # 0.5 rounds half to even -> 0 -> class 3
        "binary": ([0, 0, 1, 1, 1], 2),
    }
    for target, (classes, k) in expected.items():
        ds = MMSADataset(path, target=target)
        assert [ds[i]["target"].item() for i in range(5)] == classes
        assert ds[0]["target"].dtype == torch.long and ds.task.num_classes == k
        assert ds.labels("train")[:5].tolist() == classes
    assert MMSADataset(path, target="class3").task.class_names == ("negative", "neutral", "positive")
    reg = MMSADataset(path)
    assert [round(ds_t, 4) for ds_t in reg.regression_labels("train")[:5].tolist()] == values
    assert reg.stratify_labels()[:5].tolist() == [0, 0, 1, 2, 2]



def test_class_counts_are_of_the_target_classes(aligned_file: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    from robustmm.cli import main
    from robustmm.report.datainfo import class_counts

    def set_labels(d: dict) -> None:
        d["train"]["regression_labels"][:] = [-1.0] * 4 + [2.0] * 20
        d["valid"]["regression_labels"][:] = 0.0
        d["test"]["regression_labels"][:] = [-2.6] * 3 + [3.0] * 7  # -2.6 rounds to -3

    path = _edited(aligned_file, tmp_path, set_labels)
    splits = {"train": range(24), "val": range(24, 32), "test": range(32, 42)}
    counts7 = class_counts(MMSADataset(path, target="class7"), splits)
    assert counts7 == {"train": {"-3": 0, "-2": 0, "-1": 4, "0": 0, "1": 0, "2": 20, "3": 0},
                       "val": {"-3": 0, "-2": 0, "-1": 0, "0": 8, "1": 0, "2": 0, "3": 0},
                       "test": {"-3": 3, "-2": 0, "-1": 0, "0": 0, "1": 0, "2": 0, "3": 7}}
    assert class_counts(MMSADataset(path, target="binary")) == {"all": {"negative": 7, "non-negative": 35}}
    assert class_counts(MMSADataset(path, target="class3")) == {
        "all": {"negative": 7, "neutral": 8, "positive": 27}}
    regression = MMSADataset(path)
    assert class_counts(regression) is None  # no classes to count
    assert regression.stratify_labels().tolist() == [0] * 4 + [2] * 20 + [1] * 8 + [0] * 3 + [2] * 7
    assert main(["data", "check", "mmsa", str(path), "--option", "target=class7", "--option", "trust_pickle=true",
                 "--quiet"]) == 0
    assert "-3: 3, -2: 0, -1: 4, 0: 8, 1: 0, 2: 20, 3: 7" in capsys.readouterr().out

def test_unaligned_lengths_and_neg_inf(unaligned_file: Path, tmp_path: Path) -> None:
    raw = _load(unaligned_file)

    def plant(d: dict) -> None:
        d["test"]["audio"][1, 0, :3] = -np.inf
        d["test"]["audio"][1, 2, 0] = np.nan
        d["test"]["audio_lengths"][4] = 0  # a clip without any audio

    ds = MMSADataset(_edited(unaligned_file, tmp_path, plant))
    assert not ds.aligned
    assert ds.modalities["audio"].shape == (30, 5) and ds.modalities["vision"].shape == (40, 6)
    te = raw["test"]
    s = ds[32 + 1]
    la, lv = int(te["audio_lengths"][1]), int(te["vision_lengths"][1])
    assert s["valid"]["audio"].tolist() == [True] * la + [False] * (30 - la)
    assert s["valid"]["vision"].tolist() == [True] * lv + [False] * (40 - lv)
    a = s["inputs"]["audio"]
    assert torch.isfinite(a).all()
    assert (a[0, :3] == 0).all() and a[2, 0] == 0
    assert a[0, 3] == pytest.approx(float(te["audio"][1, 0, 3]))  # untouched neighbours kept
    assert ds.nonfinite_counts == {("test", "audio"): 4}
    assert ds[32 + 4]["present"]["audio"] is False and not ds[32 + 4]["valid"]["audio"].any()
    assert ds.natural_presence()["audio"].sum() == len(ds) - 1


def test_zeroed_non_finite_values_reach_the_data_report_and_data_check(unaligned_file: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """The count of -inf/NaN feature values set to 0 was only logged: the run's data report and
    the lines of 'robustmm data check' did not show it."""
    from robustmm.cli import main

    def plant(d: dict) -> None:
        d["train"]["vision"][0, 0, :2] = -np.inf

    path = _edited(unaligned_file, tmp_path, plant)
    note = "split 'train': 2 non-finite vision values set to 0"
    assert any(note in n for n in MMSADataset(path).report.to_dict()["notes"])
    assert main(["data", "check", "mmsa", str(path), "--option", "trust_pickle=true", "--quiet"]) == 0
    assert f"note: MMSA file {path}, {note}" in capsys.readouterr().out


def test_a_missing_file_names_the_option_that_picks_the_file_in_a_folder(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """A folder without aligned_50.pkl was answered with a Python function to call, not with the
    option that names another file in it (or the command that writes a synthetic one)."""
    from robustmm.cli import main

    assert main(["data", "check", "mmsa", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"MMSA file {tmp_path / 'aligned_50.pkl'} does not exist" in err
    assert "data.options.file" in err and "--option file=" in err and "robustmm data synth mmsa" in err


def test_aligned_other_length_without_lengths_is_all_valid(aligned_file: Path, tmp_path: Path) -> None:
    def longer_vision(d: dict) -> None:
        for k in d:
            n = d[k]["vision"].shape[0]
            d[k]["vision"] = np.ones((n, 7, 6), dtype=np.float32)

    ds = MMSADataset(_edited(aligned_file, tmp_path, longer_vision))
    assert ds[0]["valid"]["vision"].tolist() == [True] * 7


# ---------------------------------------------------------------- loader: bad files
def _expect_error(src: Path, tmp_path: Path, edit: Callable[[dict], None], *fragments: str) -> None:
    path = _edited(src, tmp_path, edit)
    with pytest.raises(DataError) as info:
        MMSADataset(path)
    msg = str(info.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_missing_key(aligned_file: Path, tmp_path: Path) -> None:
    _expect_error(aligned_file, tmp_path, lambda d: d["valid"].pop("audio"), "split 'valid'", "key 'audio'", "missing")


def test_missing_split(aligned_file: Path, tmp_path: Path) -> None:
    _expect_error(aligned_file, tmp_path, lambda d: d.pop("valid"), "split 'valid'", "missing")


def test_wrong_number_of_dims(aligned_file: Path, tmp_path: Path) -> None:
    def flatten(d: dict) -> None:
        d["test"]["audio"] = d["test"]["audio"].reshape(len(d["test"]["id"]), -1)

    _expect_error(aligned_file, tmp_path, flatten, "split 'test'", "key 'audio'", "2 dimensions")


def test_first_dimension_disagrees(aligned_file: Path, tmp_path: Path) -> None:
    def shorten(d: dict) -> None:
        d["train"]["vision"] = d["train"]["vision"][:-1]

    _expect_error(aligned_file, tmp_path, shorten, "split 'train'", "key 'vision'", "23 rows")


def test_lengths_longer_than_sequence(unaligned_file: Path, tmp_path: Path) -> None:
    def too_long(d: dict) -> None:
        d["train"]["audio_lengths"][3] = 31

    _expect_error(unaligned_file, tmp_path, too_long, "split 'train'", "key 'audio_lengths'", "row 3", "31")


def test_negative_lengths(unaligned_file: Path, tmp_path: Path) -> None:
    def negative(d: dict) -> None:
        d["valid"]["vision_lengths"][0] = -2

    _expect_error(unaligned_file, tmp_path, negative, "split 'valid'", "key 'vision_lengths'", "negative")


def test_labels_outside_range(aligned_file: Path, tmp_path: Path) -> None:
    def out_of_range(d: dict) -> None:
        d["test"]["regression_labels"][5] = 3.5

    _expect_error(aligned_file, tmp_path, out_of_range, "split 'test'", "key 'regression_labels'", "row 5")


def test_splits_with_different_feature_sizes(aligned_file: Path, tmp_path: Path) -> None:
    def wider(d: dict) -> None:
        d["test"]["audio"] = np.zeros((len(d["test"]["id"]), 12, 7), dtype=np.float32)

    _expect_error(aligned_file, tmp_path, wider, "split 'test'", "key 'audio'")


def test_missing_or_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        MMSADataset(tmp_path / "nope.pkl")
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="corrupt"):
        MMSADataset(bad)


# ---------------------------------------------------------------- study config -> dataset
def _data_cfg(root: Path, options: dict | None = None, synthetic: dict | None = None):
    from robustmm.config.schema import GenericDataConfig

    return GenericDataConfig(kind="mmsa", root=root, options=options or {}, synthetic=synthetic)


def test_features_mode_carries_token_ids_and_special_ids(aligned_file: Path) -> None:
    ds = MMSADataset(aligned_file, text_mode="features", target="class3")
    raw = _load(aligned_file)
    assert ds.modalities["text"].special_ids == (CLS_ID, SEP_ID)
    assert torch.equal(ds[3]["meta"]["token_ids"], torch.as_tensor(raw["train"]["text_bert"][3, 0]))
    assert ds.task.kind == "multiclass" and ds.task.adapter == "sentiment_class3"
    assert "token_ids" not in MMSADataset(aligned_file, text_mode="ids")[3]["meta"]


def test_build_from_config_writes_synthetic_file_once(tmp_path: Path) -> None:
    from robustmm.data.registry import build_dataset

    root = tmp_path / "mosi"
    synth = dict(n_train=12, n_valid=5, n_test=6, seq_len=8, dims=[6, 3, 4], seed=2)
    ds = build_dataset(_data_cfg(root, {"text_mode": "features", "target": "class7"}, synth), progress=False)
    assert (root / "aligned_50.pkl").is_file() and ds.synthetic and len(ds) == 23
    assert ds.task.num_classes == 7 and ds.modalities["text"].shape == (8, 6)
    stamp = (root / "aligned_50.pkl").stat().st_mtime_ns
    again = build_dataset(_data_cfg(root, {"text_mode": "features"}, synth), progress=False)
    assert (root / "aligned_50.pkl").stat().st_mtime_ns == stamp  # existing data are reused, not rewritten
    assert again.subject_ids() == ds.subject_ids()
    # unaligned synthetic file under its own name; the root may also name the file itself
    unaligned = build_dataset(_data_cfg(tmp_path / "un", {"file": "unaligned_50.pkl"},
                                        {**synth, "aligned": False, "audio_len": 20, "vision_len": 24}), False)
    assert not unaligned.aligned and unaligned.modalities["audio"].shape == (20, 3)
    direct = build_dataset(_data_cfg(tmp_path / "un" / "unaligned_50.pkl"), progress=False)
    assert direct.subject_ids() == unaligned.subject_ids()


def test_build_from_config_errors_name_the_key(tmp_path: Path) -> None:
    from robustmm.data.registry import build_dataset
    from robustmm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.options\.text_mod"):
        build_dataset(_data_cfg(tmp_path / "x", {"text_mod": "ids"}), progress=False)
    with pytest.raises(ConfigError, match=r"data\.synthetic\.n_train"):
        build_dataset(_data_cfg(tmp_path / "x", {}, {"n_train": 2}), progress=False)
    with pytest.raises(ConfigError, match="needs a folder"):
        build_dataset(_data_cfg(tmp_path / "x.pkl", {}, {}), progress=False)
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(_data_cfg(tmp_path / "absent"), progress=False)


def test_cli_synth_mmsa(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robustmm.cli import main

    out = tmp_path / "mosi" / "unaligned_50.pkl"
    args = ["data", "synth", "mmsa", "--out", str(out), "--n-train", "12", "--n-valid", "5", "--n-test", "6",
            "--unaligned", "--seq-len", "8", "--audio-len", "20", "--vision-len", "24", "--dims", "6", "3", "4"]
    assert main(args) == 0
    ds = MMSADataset(out)
    assert not ds.aligned and len(ds) == 23 and ds.modalities["vision"].shape == (24, 4)
    assert "unaligned" in capsys.readouterr().out
    assert main(args) == 2  # never overwrites
    assert main(["data", "synth", "mmsa", "--out", str(tmp_path / "b.pkl"), "--bias-train", "2"]) == 2
    assert "bias_strength_train" in capsys.readouterr().err


def test_cli_synth_mmsa_refuses_what_a_study_refuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robustmm.cli import main

    out = tmp_path / "mosi" / "aligned_50.pkl"
    for extra, message in ((["--dims", "768", "0", "20"], "--dims AUDIO (dims): Input should be greater than or equal to 1"),
                           (["--n-train", "0"], "--n-train (n_train): Input should be greater than or equal to 10"),
                           (["--seed", "-1"], "--seed (seed): Input should be greater than or equal to 0")):
        argv = ["data", "synth", "mmsa", "--out", str(out), "--n-train", "10", "--n-valid", "5", "--n-test", "5",
                "--seq-len", "8", "--dims", "6", "3", "4"]
        assert main(argv + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("robustmm: error: ") and message in err and "Traceback" not in err
        assert not out.parent.exists()  # checked before anything is written


def test_failed_synthetic_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    import robustmm.data.synth.mmsa as synth
    from robustmm.cli import main

    def fail(**_: object) -> dict:
        raise RuntimeError("oracle failed")

    folder = tmp_path / "mosi"
    folder.mkdir()
    (folder / "other.txt").write_text("kept")
    argv = ["data", "synth", "mmsa", "--out", str(folder / "aligned_50.pkl"), "--n-train", "10", "--n-valid", "5",
            "--n-test", "5", "--seq-len", "8", "--dims", "6", "3", "4"]
    with monkeypatch.context() as patch:
        patch.setattr(synth, "oracle_ceilings", fail)
        with pytest.raises(RuntimeError, match="oracle failed"):
            main(argv)
    assert sorted(p.name for p in folder.iterdir()) == ["other.txt"]  # no partial files, no staging folder
    assert main(argv) == 0  # so a rerun is not refused with "exists"
    assert sorted(p.name for p in folder.iterdir()) == ["SYNTHETIC_DATA.json", "aligned_50.README.md",
                                                       "aligned_50.npz", "aligned_50.pkl", "other.txt"]
    assert len(_MMSADataset(folder / "aligned_50.pkl")) == 20  # the moved .npz matches its moved pickle


MOSI_STUDY = Path(__file__).resolve().parents[1] / "studies" / "mosi_rmfm.yaml"


def test_a_run_whose_mmsa_file_is_missing_stops_before_the_run_folder(tmp_path: Path, capsys) -> None:
    # a folder without the file was found by the loader, after the run folder was made
    from robustmm.cli import main
    from robustmm.config import load_study
    from robustmm.data.registry import check_data_root

    folder, out = tmp_path / "mosi", tmp_path / "run"
    folder.mkdir()
    cases = [([f"data.root={folder}"], f"MMSA file {folder / 'aligned_50.pkl'} does not exist",
              "robustmm data synth mmsa --out FILE"),
             ([f"data.root={folder}", "data.options.file=aligned_50.npz"],
              f"MMSA file {folder / 'aligned_50.npz'} does not exist", "robustmm data convert mmsa"),
             ([f"data.root={tmp_path / 'nowhere.pkl'}"], "nowhere.pkl does not exist", "robustmm data convert mmsa")]
    for overrides, said, command in cases:
        sets = [arg for o in ["data.synthetic=null", *overrides] for arg in ("--set", o)]
        assert main(["run", str(MOSI_STUDY), "--out", str(out), "--quiet", *sets]) == 2
        err = capsys.readouterr().err
        assert said in err and command in err, err
        assert not out.exists()
    check_data_root(load_study(MOSI_STUDY, [f"data.root={tmp_path / 'written_on_first_use'}"]).data)  # synthetic

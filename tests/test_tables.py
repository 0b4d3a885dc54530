"""TableDataset on small hand-made tables with known answers."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from robustmm.data import tables
from robustmm.data.batch import collate
from robustmm.data.tables import ColumnSelector, TableDataset, assign_bins, quartile_bins, read_table
from robustmm.errors import DataError


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "pid": ["s1", "s2", "s3", "s4", "s5", "s6"],
        "a_x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "b_x": [0, 1, 0, 1, 0, 1],
        "p_1": [10.0, np.nan, 30.0, 40.0, 50.0, 60.0],
        "p_2": [1.0, np.nan, 3.0, 4.0, np.nan, 6.0],
        "r10": [1, 2, 3, 4, 5, 6],
        "r20": [6, 5, 4, 3, 2, 1],
        "c1": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        "kind": ["u", "v", "u", None, "v", "u"],
        "label": ["no", "yes", "no", "yes", "no", "yes"],
        "months": [5.0, 3.0, 8.0, 1.0, 9.0, 2.0],
        "dead": [1, 0, 1, 1, 0, 0],
    })


MODS = {"x": {"suffix": "_x"}, "p": {"prefix": "p_"}, "r": {"regex": r"^r\d+$"}, "c": ["c1", "kind"]}
BINARY = {"kind": "binary", "column": "label", "classes": ["no", "yes"]}


def make(df: pd.DataFrame | None = None, **kw) -> TableDataset:
    kw.setdefault("categorical", ["kind"])
    return TableDataset(frame() if df is None else df, "pid", kw.pop("modalities", MODS), kw.pop("target", BINARY), **kw)


def test_selectors_pick_the_right_columns() -> None:
    ds = make()
    assert ds.columns == {"x": ["a_x", "b_x"], "p": ["p_1", "p_2"], "r": ["r10", "r20"], "c": ["c1", "kind"]}
    assert ds.feature_names["c"] == ["c1", "kind=u", "kind=v"]
    assert {k: v.shape for k, v in ds.modalities.items()} == {"x": (2,), "p": (2,), "r": (2,), "c": (3,)}
    assert all(m.kind == "table" for m in ds.modalities.values())
    assert ColumnSelector(regex="0$").select(["r10", "r21", "a0"]) == ["r10", "a0"]


def test_selector_must_have_exactly_one_rule() -> None:
    with pytest.raises(DataError, match="exactly one"):
        ColumnSelector(suffix="_x", prefix="p_")
    with pytest.raises(DataError, match="selects no column"):
        make(modalities={"z": {"suffix": "_nope"}})


def test_target_and_id_never_become_features() -> None:
    ds = make(frame().drop(columns="label"), modalities={"all": {"regex": ".*"}}, categorical=["kind"],
              target={"kind": "survival", "time": "months", "event": "dead"})
    assert "months" not in ds.columns["all"] and "dead" not in ds.columns["all"] and "pid" not in ds.columns["all"]
    with pytest.raises(DataError, match="leak"):
        make(modalities={"x": ["a_x", "label"]})
    with pytest.raises(DataError, match="both modality"):
        make(modalities={"x": {"suffix": "_x"}, "y": ["a_x"]})


def test_all_nan_group_is_naturally_missing() -> None:
    ds = make()
    ds.fit(range(6))
    s2 = ds[1]  # p_1 and p_2 both NaN for s2
    assert s2["present"]["p"] is False
    assert not s2["valid"]["p"].any()
    assert torch.equal(s2["inputs"]["p"], torch.zeros(2))
    assert ds.natural_presence()["p"].tolist() == [True, False, True, True, True, True]
    assert make(missing_from_nan=False, nan_policy="impute").natural_presence()["p"].all()


def test_impute_uses_train_mean_and_reports_it() -> None:
    ds = make(standardize="none")
    train = [0, 2, 3]  # p_2 train values 1, 3, 4 -> mean 8/3
    summary = ds.fit_imputer(train)
    s5 = ds[4]  # p_2 is NaN, p_1 = 50 observed
    assert s5["present"]["p"] is True
    assert s5["valid"]["p"].tolist() == [True, False]
    assert s5["inputs"]["p"][1].item() == pytest.approx(8 / 3, rel=1e-6)
    assert s5["inputs"]["p"][0].item() == pytest.approx(50.0)
    assert summary["p"]["n_cells"] == 1  # s2 is absent, so only s5's cell is imputed
    assert summary["p"]["columns"]["p_2"] == {"mean": pytest.approx(8 / 3), "n_missing": 1}
    # categorical NaN (s4 kind) -> both one-hot columns invalid and imputed with train frequencies
    s4 = ds[3]
    assert s4["valid"]["c"].tolist() == [True, False, False]
    assert s4["inputs"]["c"][1:].tolist() == pytest.approx([1.0, 0.0])  # train rows 0,2 are 'u'; 3 is NaN


def test_reading_before_fit_imputer_is_refused() -> None:
    ds = make()
    with pytest.raises(RuntimeError, match="fit_imputer"):
        ds[4]


def test_nan_policy_error_names_columns_and_subjects() -> None:
    with pytest.raises(DataError) as err:
        make(nan_policy="error", categorical=[], modalities={"p": {"prefix": "p_"}})
    msg = str(err.value)
    assert "p_2" in msg and "s5" in msg and "p_1" not in msg and "s2" not in msg  # s2 is naturally missing


def test_non_numeric_value_names_column_and_example() -> None:
    df = frame()
    df.loc[2, "r20"] = "high"
    with pytest.raises(DataError) as err:
        make(df)
    assert "'r20'" in str(err.value) and "'high'" in str(err.value) and "s3" in str(err.value)
    with pytest.raises(DataError, match="kind"):
        make(categorical=[])  # 'kind' holds strings and is not declared categorical


def test_scaler_uses_train_rows_and_skips_binary_columns() -> None:
    ds = make(categorical=["kind"])
    train = [0, 1, 2]
    ds.fit(train)
    mean, std = 2.0, 1.0  # a_x on rows 0..2: 1, 2, 3 (sample std 1)
    x = ds[5]["inputs"]["x"]
    assert x[0].item() == pytest.approx((6.0 - mean) / std)
    assert x[1].item() == pytest.approx(1.0)  # b_x is binary: left as is
    assert ds[0]["inputs"]["c"][0].item() == pytest.approx(0.0)  # constant column -> 0, not NaN
    # changing a test row does not move the statistics
    df = frame()
    df.loc[5, "a_x"] = 1000.0
    other = make(df, categorical=["kind"])
    other.fit(train)
    assert other.scale_mean["x"][0] == pytest.approx(mean)


def test_classification_target_and_collate() -> None:
    ds = make()
    ds.fit(range(6))
    assert ds.task.kind == "binary" and ds.task.class_names == ("no", "yes")
    assert ds.stratify_labels().tolist() == [0, 1, 0, 1, 0, 1]
    batch = collate([ds[i] for i in range(6)])
    assert batch.target.dtype == torch.long and batch.target.tolist() == [0, 1, 0, 1, 0, 1]
    assert batch.inputs["x"].shape == (6, 2) and batch.inputs["x"].dtype == torch.float32
    assert batch.present["p"].tolist() == [True, False, True, True, True, True]
    assert batch.subjects == ["s1", "s2", "s3", "s4", "s5", "s6"]
    with pytest.raises(DataError, match="binary"):
        make(target={"kind": "binary", "column": "r10"})


def test_duplicate_ids_identical_rows_kept_once_conflicting_rows_refused() -> None:
    same = pd.concat([frame(), frame().iloc[[0]]], ignore_index=True)
    assert len(make(same)) == 6
    with pytest.raises(DataError, match="s1"):
        make(same, dedupe=False)  # any repeated id is an error without dedupe
    conflicting = pd.concat([frame(), frame().iloc[[0]].assign(a_x=99.0)], ignore_index=True)
    with pytest.raises(DataError, match=r"s1.*different values.*a_x"):
        make(conflicting)  # never "the first row wins"


def test_survival_target() -> None:
    ds = make(target={"kind": "survival", "time": "months", "censorship": "dead"})
    assert ds.events.tolist() == [0, 1, 0, 0, 1, 1]  # censorship 1 -> event 0
    ds = make(target={"kind": "survival", "time": "months", "event": "dead"})
    ds.fit(range(6))
    t = ds[0]["target"]
    assert t["time"].item() == 5.0 and t["event"].item() == 1.0
    assert ds.task.kind == "survival" and ds.task.num_classes == 4
    assert ds.stratify_labels().tolist() == [1, 0, 1, 1, 0, 0]
    # bins from uncensored train times 5, 8, 1 -> edges 3, 5, 6.5
    assert ds.bin_cuts[1:-1].tolist() == pytest.approx([3.0, 5.0, 6.5])
    assert ds[4]["target"]["bin"].item() == 3  # 9 months


def test_a_binary_target_of_text_labels_needs_its_positive_class_named() -> None:
    # unnamed, the positive class (AUC, the score) was silently the alphabetically later label
    with pytest.raises(DataError, match=r"text labels \['no', 'yes'\]; say which is positive with classes: "
                                        r"\[negative, positive\].*data.options.target.classes: \['no', 'yes'\]"):
        make(target={"kind": "binary", "column": "label"})
    flipped = make(target={"kind": "binary", "column": "label", "classes": ["yes", "no"]})
    assert flipped.task.class_names == ("yes", "no") and flipped.stratify_labels().tolist() == [1, 0, 1, 0, 1, 0]
    numeric = frame().assign(label=[0, 1, 0, 1, 0, 1])  # 0/1 need no order
    assert make(numeric, target={"kind": "binary", "column": "label"}).task.class_names == ("0", "1")


@pytest.mark.parametrize("change, message", [
    ({"months": (2, np.nan)}, "s3"),
    ({"months": (4, -1.0)}, "negative"),
    ({"dead": (1, 2)}, "0 or 1"),
])
def test_survival_bad_values(change, message) -> None:
    df = frame()
    for col, (row, value) in change.items():
        df.loc[row, col] = value
    with pytest.raises(DataError, match=message):
        make(df, target={"kind": "survival", "time": "months", "event": "dead"})


def test_survival_all_censored() -> None:
    df = frame().assign(dead=0)
    with pytest.raises(DataError, match="censored"):
        make(df, target={"kind": "survival", "time": "months", "event": "dead"})


def test_patients_censored_at_time_zero_are_noted() -> None:
    assert not make(target={"kind": "survival", "time": "months", "event": "dead"}).report.notes
    df = frame()
    df.loc[[1, 5], "months"] = 0.0  # s2 and s6 are censored; a death at 0 (s1) is kept without a note
    df.loc[0, "months"] = 0.0
    ds = make(df, target={"kind": "survival", "time": "months", "event": "dead"})
    assert ds.report.notes == ["<DataFrame>: 2 patients censored at months 0 (s2, s6); such rows add nothing to the "
                               "survival likelihood and often mean a data-entry error: check their follow-up time"]


def test_negative_time_error_lists_patient() -> None:
    df = frame()
    df.loc[4, "months"] = -3.0
    with pytest.raises(DataError, match="s5"):
        make(df, target={"kind": "survival", "time": "months", "event": "dead"})


def test_quartile_bins_known_numbers() -> None:
    times = [1, 2, 3, 4, 5, 6, 7, 8, 100, 200]
    events = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]  # censored times are ignored by the cut points
    cuts = quartile_bins(times, events)
    assert cuts[0] == -np.inf and cuts[-1] == np.inf
    assert cuts[1:-1].tolist() == pytest.approx([2.75, 4.5, 6.25])
    assert assign_bins([0.0, 2.75, 3.0, 4.5, 6.0, 6.25, 1e6], cuts).tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert quartile_bins([1, 2, 3], [1, 1, 1], n_bins=2)[1] == pytest.approx(2.0)
    with pytest.raises(DataError):
        quartile_bins([1, 2], [0, 0])


def test_read_table_formats(tmp_path) -> None:
    df = frame()
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    assert read_table(tmp_path / "t.tsv").shape == df.shape
    text = df.to_csv(index=False).encode()
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:  # member named .csv.zip holding plain text
        z.writestr("./t.csv.zip", text)
    assert read_table(tmp_path / "plain.zip")["pid"].tolist() == df["pid"].tolist()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("t.csv", text)
    with zipfile.ZipFile(tmp_path / "nested.zip", "w") as z:  # member that really is a zip
        z.writestr("t.csv.zip", inner.getvalue())
    assert read_table(tmp_path / "nested.zip").shape == df.shape
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "missing.csv")
    ds = TableDataset(tmp_path / "t.tsv", "pid", {"x": {"suffix": "_x"}}, BINARY)
    assert len(ds) == 6 and ds.source_name.endswith("t.tsv")


def test_zip_nested_deeper_than_one_zip_is_refused_with_the_file(tmp_path, monkeypatch) -> None:
    """A zip in a zip in a zip ... was opened recursively without a limit: deep nesting (a hostile
    file) ended in a RecursionError traceback. One zip inside the table's zip is read, no deeper."""
    text = frame().to_csv(index=False).encode()

    def wrapped(layers: int, member: str = "t.csv.zip") -> bytes:
        data = text
        for layer in range(layers):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr(member if layer else "t.csv", data)
            data = buf.getvalue()
        return data

    (tmp_path / "one.zip").write_bytes(wrapped(2))  # the table's zip holding a zip: read
    assert read_table(tmp_path / "one.zip").shape == frame().shape
    for layers in (3, 2000):
        path = tmp_path / f"deep{layers}.zip"
        path.write_bytes(wrapped(layers))
        with pytest.raises(DataError, match=rf"deep{layers}\.zip:t\.csv\.zip:t\.csv\.zip: .*zip archive nested "
                                            r"in a zip nested in a zip.*unzip"):
            read_table(path)
    # members are read into memory, never extracted: a '..' or absolute member name writes nothing
    def extracting(*args, **kwargs):
        raise AssertionError("a zip member was extracted to disk")

    monkeypatch.setattr(zipfile.ZipFile, "extract", extracting)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", extracting)
    for member in ("../../escaped.csv", "/tmp/escaped.csv"):
        with zipfile.ZipFile(tmp_path / "names.zip", "w") as z:
            z.writestr(member, text)
        assert read_table(tmp_path / "names.zip").shape == frame().shape



def test_zip_members_larger_than_the_cap_are_refused_with_archive_and_member(tmp_path, monkeypatch) -> None:
    """A zip member was decompressed whole into memory, however large: a zip bomb filled the memory."""
    text = frame().to_csv(index=False).encode()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("t.csv", text + b"\n" * 10_000)
    with zipfile.ZipFile(tmp_path / "nested.zip", "w") as z:
        z.writestr("t.csv.zip", inner.getvalue())
    with zipfile.ZipFile(tmp_path / "big.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("t.csv", text + b"\n" * 10_000)
    assert read_table(tmp_path / "big.zip").shape == frame().shape  # under the default cap
    monkeypatch.setattr(tables, "MAX_ZIP_MEMBER_BYTES", 5_000)
    with pytest.raises(DataError, match=rf"big\.zip: member t\.csv declares {len(text) + 10_000} bytes "
                                        r"uncompressed; robustmm decompresses at most 5000 bytes .* extract it "
                                        "yourself"):
        read_table(tmp_path / "big.zip")
    with pytest.raises(DataError, match=r"nested\.zip:t\.csv\.zip: member t\.csv declares"):
        read_table(tmp_path / "nested.zip")  # the outer member (about 1 kB compressed) is under the cap


def test_a_zip_header_understating_the_size_cannot_bypass_the_cap(tmp_path, monkeypatch) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("t.csv", b"a\n" + b"0\n" * 2**24)  # 32 MiB of text, 32 kB compressed
    data = bytearray(bomb.getvalue())
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 10)  # the declared uncompressed size
    (tmp_path / "bomb.zip").write_bytes(data)
    tracemalloc.start()
    try:  # zipfile stops at the declared size, but a whole-member read decompresses everything first
        with pytest.raises(DataError, match=r"bomb\.zip: not a valid zip archive \(Bad CRC-32"):
            read_table(tmp_path / "bomb.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20

    class Understating:  # an archive reader that returns more than the header declares
        def namelist(self):
            return ["t.csv"]

        def getinfo(self, member):
            return zipfile.ZipInfo(member)

        def open(self, member):
            return io.BytesIO(b"0\n" * 3_000)

    monkeypatch.setattr(tables, "MAX_ZIP_MEMBER_BYTES", 5_000)
    with pytest.raises(DataError, match=r"x\.zip: member t\.csv decompresses to more than 5000 bytes \(its "
                                        r"header declares 0\); robustmm decompresses at most 5000 bytes"):
        tables._read_zip(Understating(), "x.zip")


@pytest.mark.parametrize("suffix, opener", [(".gz", "gzip"), (".bz2", "bz2"), (".xz", "lzma")])
def test_compressed_tables_are_decompressed_under_the_same_cap(tmp_path, monkeypatch, suffix, opener) -> None:
    """pandas decompressed .gz/.bz2/.xz tables without a limit: a few kB could fill the memory."""
    import importlib

    text = frame().to_csv(index=False).encode()
    path = tmp_path / f"t.csv{suffix}"
    with importlib.import_module(opener).open(path, "wb") as fh:
        fh.write(text)
    assert read_table(path).equals(frame())  # under the default cap, the same table
    monkeypatch.setattr(tables, "MAX_ZIP_MEMBER_BYTES", len(text) - 1)
    monkeypatch.setattr(tables, "_ZIP_CHUNK", 16)
    with pytest.raises(DataError, match=rf"t\.csv\{suffix}: decompresses to more than {len(text) - 1} bytes; .* "
                                        "decompress it yourself"):
        read_table(path)
    path.write_bytes(b"not compressed")
    with pytest.raises(DataError, match=rf"t\.csv\{suffix}: cannot read the table"):
        read_table(path)


def test_missing_id_column_names_file(tmp_path) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv.*'subject'"):
        TableDataset(tmp_path / "t.csv", "subject", {"x": {"suffix": "_x"}}, BINARY)


def test_a_column_name_repeated_in_the_header_is_refused(tmp_path) -> None:
    """pandas renames a repeated header name X to X.1, which a suffix selector then skipped: one of
    two TP53_rnaseq columns vanished from the modality without a word. Names that merely end in
    .<digit> (RP11-193H5.1_mut in the real LUAD table, X.1 here) are read as they are."""
    df = frame()
    text = df.to_csv(index=False)
    header, body = text.split("\n", 1)
    cols = header.split(",")
    x_cols = [c for c in cols if c.endswith("_x")]
    repeated = ",".join(x_cols[0] if c == x_cols[1] else c for c in cols) + "\n" + body
    for name, data in (("t.csv", repeated), ("t.tsv", repeated.replace(",", "\t"))):
        (tmp_path / name).write_text(data)
        with pytest.raises(DataError, match=rf"{name}: column {x_cols[0]} appears more than once"):
            read_table(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as z:
        z.writestr("t.csv.zip", repeated)
    with pytest.raises(DataError, match=rf"t\.zip:t\.csv\.zip: column {x_cols[0]} appears more than once"):
        read_table(tmp_path / "t.zip")
    df.rename(columns={x_cols[1]: "X.1", x_cols[0]: "X"}).to_csv(tmp_path / "ok.csv", index=False)
    assert "X.1" in read_table(tmp_path / "ok.csv").columns


def test_a_subject_with_no_modality_at_all_is_refused_by_the_datamodule() -> None:
    """A row whose every feature cell is empty had every modality 'naturally missing' and was kept:
    the model scored it from nothing, and the data check said nothing."""
    from robustmm.config.schema import SplitConfig
    from robustmm.data.datamodule import DataModule

    df = pd.concat([frame()] * 3, ignore_index=True)
    df["pid"] = [f"s{i}" for i in range(len(df))]
    features = [c for c in df.columns if c not in ("pid", "label", "months", "dead")]
    df.loc[[4, 9], features] = np.nan
    with pytest.raises(DataError, match=r"<DataFrame>: 2 subjects have no modality at all \(s4, s9: "):
        DataModule(make(df), SplitConfig(), seed=0)
    DataModule(make(df.drop(index=[4, 9])), SplitConfig(), seed=0)


def test_a_table_folder_without_its_file_fails_before_the_run_folder(tmp_path) -> None:
    from robustmm.config.schema import GenericDataConfig
    from robustmm.data.registry import check_data_root
    from robustmm.errors import DataError

    # the run made its folder first, then the loader found no table
    data = GenericDataConfig(kind="table", root=tmp_path, options={
        "file": "t.csv", "id_column": "id", "modalities": {"a": {"prefix": "a_"}},
        "target": {"kind": "binary", "column": "y"}})
    with pytest.raises(DataError, match=f"{tmp_path / 't.csv'}: table file not found"):
        check_data_root(data)


@pytest.mark.parametrize("n, said", [(1, "the one patient is censored"), (3, "all 3 patients are censored")])
def test_survival_data_without_a_death_is_refused_in_words_that_fit_the_count(n, said):
    from robustmm.errors import DataError

    with pytest.raises(DataError, match=rf"cohort.csv: {said} \(no death in column 'event'\)"):
        tables.validate_survival([5.0] * n, [0] * n, [f"P{i}" for i in range(n)], "cohort.csv")

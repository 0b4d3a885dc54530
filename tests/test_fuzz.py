"""Property-based robustness: random and mutated study files and tables (hypothesis, seeded).

The property: a loader either succeeds or raises the project's own :class:`RobustMMError` with
a message -- never another exception (a traceback for the user). The default suite runs >= 500
generated study files and >= 200 mutated tables, derandomized (the same examples every run).
"""

from __future__ import annotations

import copy
import math
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustmm.config import load_study
from robustmm.errors import RobustMMError

FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

# ---------------------------------------------------------------------------- study files
BASE_STUDIES = [
    {"name": "adni", "seed": 1, "output_dir": "runs",
     "data": {"kind": "adni", "root": "datasets/adni", "volume_shape": [16, 16, 16]},
     "split": {"val_fraction": 0.15, "test_fraction": 0.25},
     "model": {"embed_dim": 16, "volume": {"channels": [4, 8], "strides": [2, 2]}},
     "training": {"epochs": 2, "batch_size": 8, "device": "cpu", "early_stopping": {"patience": 3}},
     "evaluation": {"bootstrap": 10, "scenarios": [
         {"kind": "natural"}, {"kind": "modality_rate", "modality": "pet", "rates": [0.0, 0.5, 1.0]},
         {"kind": "subset", "modalities": ["mri", "clinical"]}]},
     "methods": [{"name": "complete_only"}, {"name": "dropout_baseline", "id": "drop"}]},
    {"name": "mosi", "data": {"kind": "mmsa", "root": "datasets/mosi", "options": {"target": "class3"}},
     "evaluation": {"scenarios": [{"kind": "rmfm", "rates": [0.0, 0.3], "modality_rates": {"text": 0.1}},
                                  {"kind": "temporal_block", "rate": 0.2}, {"kind": "random_modality", "rate": 0.5}]},
     "methods": [{"name": "dropout_baseline", "dropout": {"kind": "random_modality", "rate": 0.3}}]},
    {"name": "blca", "data": {"kind": "table", "root": "t.csv", "options": {
        "id_column": "case_id", "modalities": {"rna": {"suffix": "_rnaseq"}, "cnv": {"suffix": "_cnv"}},
        "target": {"kind": "survival", "time": "survival_months", "censorship": "censorship"}}},
     "split": {"folds": 5, "fold": "all"},
     "evaluation": {"scenarios": [{"kind": "all_subsets"}, {"kind": "modality_rate", "modality": "rna", "rate": 0.4}]},
     "methods": [{"name": "dropout_baseline"}]},
]

KEYS = ["name", "seed", "data", "kind", "root", "split", "fold", "folds", "val_fraction", "test_fraction",
        "training", "epochs", "device", "lr", "evaluation", "scenarios", "rate", "rates", "modality",
        "modalities", "methods", "id", "volume_shape", "options", "include", "profiles", "sweep", "bogus"]
NAMES = ["ok", "../../x", "/etc/passwd", "a/b", "..", ".hidden", "x" * 300, "ünï", "a b", "", "-x", "pet",
         "mri", "text", "natural", "complete_only", "dropout_baseline", "nosuch", "cuda", "all", "table"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.sampled_from([0, 1, -1, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NAMES), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=8)


def _paths(node, prefix=()):
    """Every key path (dict keys and list indices) of a nested structure."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(node, path, value, delete=False):
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@st.composite
def study_texts(draw) -> bytes:
    how = draw(st.sampled_from(["mutate", "mutate", "mutate", "mutate", "yaml-junk", "bytes"]))
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "yaml-junk":
        return draw(st.text(alphabet=string.printable + "é\u2028{}[]:-&*!|>%@`", max_size=200)).encode("utf-8")
    doc = copy.deepcopy(draw(st.sampled_from(BASE_STUDIES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "delete":
            _set(doc, path, None, delete=True)
        elif action == "add":
            parent = doc
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent[draw(st.sampled_from(KEYS))] = draw(values)
        else:
            _set(doc, path, draw(values))
    text = yaml.safe_dump(doc, allow_unicode=True)
    if draw(st.integers(0, 9)) == 0:  # a key given twice
        text += text.splitlines()[0] + "\n"
    return text.encode("utf-8")


def _check_study(path: Path) -> None:
    from robustmm.runguard import check_before_data
    from robustmm.study import validate_method_options

    try:
        cfg = load_study(path)
        validate_method_options(cfg)
        check_before_data(cfg)
    except RobustMMError as exc:
        assert str(exc).strip()


def test_random_and_mutated_study_files_give_success_or_a_robustmm_error(tmp_path: Path) -> None:
    seen = []

    @settings(FUZZ, max_examples=520)
    @given(study_texts())
    def run(text: bytes) -> None:
        path = tmp_path / "study.yaml"
        path.write_bytes(text)
        seen.append(text)
        _check_study(path)

    run()
    assert len(seen) >= 500


# ---------------------------------------------------------------------------- tables
def _base_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 16
    return pd.DataFrame({
        "case_id": [f"p{i:02d}" for i in range(n)],
        "g1_rnaseq": rng.normal(size=n), "g2_rnaseq": rng.normal(size=n),
        "c1_cnv": rng.integers(-2, 3, n), "site": rng.choice(["a", "b"], n),
        "survival_months": rng.uniform(1, 60, n).round(1), "censorship": [0, 1] * (n // 2),
        "label": [0, 1] * (n // 2)})


CELLS = ["", "nan", "inf", "-inf", "abc", "1e400", "-5", "2", "0", "é", "p00", "p01", "NULL", "  ", "1,5", '"']


@st.composite
def mutated_tables(draw) -> bytes:
    frame = _base_table().astype(object)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cell", "cell", "dup_row", "dup_id", "drop_col", "rename", "drop_rows",
                                   "truncate", "header_only", "empty", "binary", "semicolon"]))
        if op == "cell" and len(frame):
            r = draw(st.integers(0, len(frame) - 1))
            c = draw(st.sampled_from(list(frame.columns)))
            frame.loc[frame.index[r], c] = draw(st.one_of(st.sampled_from(CELLS), st.floats(), st.text(max_size=5)))
        elif op == "dup_row" and len(frame):
            frame = pd.concat([frame, frame.iloc[[draw(st.integers(0, len(frame) - 1))]]], ignore_index=True)
        elif op == "dup_id" and len(frame) > 1:
            frame.loc[frame.index[1], "case_id"] = frame.loc[frame.index[0], "case_id"]
        elif op == "drop_col" and len(frame.columns) > 1:
            frame = frame.drop(columns=[draw(st.sampled_from(list(frame.columns)))])
        elif op == "rename" and len(frame.columns):
            c = draw(st.sampled_from(list(frame.columns)))
            frame = frame.rename(columns={c: draw(st.sampled_from(["case_id", "x", "", "label", "g1_rnaseq"]))})
        elif op == "drop_rows":
            frame = frame.iloc[: draw(st.integers(0, len(frame)))]
        elif op == "header_only":
            frame = frame.iloc[:0]
    text = frame.to_csv(index=False).encode("utf-8")
    last = draw(st.sampled_from(["none", "none", "none", "truncate", "empty", "binary", "semicolon"]))
    if last == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif last == "empty":
        text = b""
    elif last == "binary":
        text = draw(st.binary(min_size=1, max_size=100)) + text
    elif last == "semicolon":
        text = text.replace(b",", b";")
    return text


TARGETS = [{"kind": "survival", "time": "survival_months", "censorship": "censorship"},
           {"kind": "binary", "column": "label"}, {"kind": "regression", "column": "survival_months"},
           {"kind": "multiclass", "column": "site"}]


def _check_table(path: Path, target: dict, dedupe: bool) -> None:
    from robustmm.data.tables import TableDataset

    try:
        ds = TableDataset(path, "case_id", {"rna": {"suffix": "_rnaseq"}, "cnv": {"suffix": "_cnv"}}, target,
                          categorical=["site"] if target["kind"] != "multiclass" else [], dedupe=dedupe)
        ds.fit(list(range(len(ds))))
        for i in range(len(ds)):
            item = ds[i]
            assert all(math.isfinite(float(v)) for x in item["inputs"].values() for v in x.flatten())
    except RobustMMError as exc:
        assert str(exc).strip()


@st.composite
def mutated_adni(draw) -> tuple[bytes, bytes]:
    from test_adni_loader import trajectories

    rows, pet = trajectories()
    table = pd.DataFrame(rows).astype(object)
    manifest = pd.DataFrame([{"PTID": p, "mri_path": f"img/{p}_T1.nii.gz",
                              "pet_path": f"img/{p}_FDG.nii.gz" if has else ""} for p, has in pet.items()])
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(["table", "table", "manifest"]))
        frame = table if target == "table" else manifest
        op = draw(st.sampled_from(["cell", "cell", "dup_row", "drop_col", "drop_rows"]))
        if op == "cell" and len(frame):
            r = draw(st.integers(0, len(frame) - 1))
            c = draw(st.sampled_from(list(frame.columns)))
            frame.loc[frame.index[r], c] = draw(st.one_of(
                st.sampled_from(CELLS + ["Dementia", "MCI", "CN", "A", "B", "img/A_T1.nii.gz", "../x"]),
                st.floats(), st.integers(-100, 100)))
        elif op == "dup_row" and len(frame):
            frame = pd.concat([frame, frame.iloc[[draw(st.integers(0, len(frame) - 1))]]], ignore_index=True)
        elif op == "drop_col":
            frame = frame.drop(columns=[draw(st.sampled_from(list(frame.columns)))])
        elif op == "drop_rows":
            frame = frame.iloc[: draw(st.integers(0, len(frame)))]
        if target == "table":
            table = frame
        else:
            manifest = frame
    out = []
    for frame in (table, manifest):
        text = frame.to_csv(index=False).encode("utf-8")
        if draw(st.integers(0, 7)) == 0:
            text = text[: draw(st.integers(0, len(text)))]
        out.append(text)
    return out[0], out[1]


@pytest.fixture(scope="module")
def adni_images(tmp_path_factory) -> Path:
    from test_adni_loader import trajectories, write_cohort

    rows, pet = trajectories()
    return write_cohort(tmp_path_factory.mktemp("fuzz_adni") / "c", rows, pet)


def test_mutated_tables_give_success_or_a_robustmm_error(tmp_path: Path, adni_images: Path) -> None:
    from robustmm.config.schema import AdniDataConfig
    from robustmm.data.adni import AdniDataset

    seen = []

    @settings(FUZZ, max_examples=160)
    @given(mutated_tables(), st.sampled_from(TARGETS), st.booleans())
    def generic(text: bytes, target: dict, dedupe: bool) -> None:
        path = tmp_path / "table.csv"
        path.write_bytes(text)
        seen.append("table")
        _check_table(path, target, dedupe)

    @settings(FUZZ, max_examples=70)
    @given(mutated_adni())
    def adni(texts: tuple[bytes, bytes]) -> None:
        (adni_images / "ADNIMERGE.csv").write_bytes(texts[0])
        (adni_images / "manifest.csv").write_bytes(texts[1])
        seen.append("adni")
        try:
            ds = AdniDataset(AdniDataConfig(root=adni_images, volume_shape=(8, 8, 8), cache=False), progress=False)
            ds.fit(list(range(len(ds))))
            [ds[i] for i in range(len(ds))]
        except RobustMMError as exc:
            assert str(exc).strip()

    generic()
    adni()
    assert len(seen) >= 200 and seen.count("adni") >= 50

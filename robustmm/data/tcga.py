"""TCGA survival cohorts in the two on-disk formats used by the published methods.

(a) **PORPOISE / MCAT tables** (mahmoodlab): one zipped CSV per cohort, one row per slide,
    columns ``case_id, slide_id, site, is_female, oncotree_code, age, survival_months,
    censorship (1 = censored), train`` followed by omics columns ending in ``_rnaseq``,
    ``_cnv`` or ``_mut``. :func:`load_porpoise_table` reads it (one row per patient),
    :class:`PorpoiseDataset` turns it into a four-modality :class:`TableDataset`.

(b) **DisPro layout** (Innse/DisPro), a folder::

        root/
          splits.csv        Study,ID,Event,Status,WSI,Omics,Fold 0,...,Fold K-1
          signatures.csv    one column per pathway, gene symbols down the rows (blank padded)
          omics/<file>.csv  one per patient: columns Gene,Value
          wsi/<slide>.pt    one torch tensor (N patches x F features) per slide

    ``Event`` is the follow-up time in months, ``Status`` is 1 for death and 0 for censored
    (the reference computes ``censorship = 1 - Status``). ``WSI`` lists the patient's slide
    files separated by ``;`` and ``Omics`` the patient's omics file; an empty cell means the
    modality is naturally missing (that is how the reference's missing-scenario CSVs are
    written). When the ``WSI`` column is absent, slides are found as ``wsi/<ID>*.pt``; when the
    ``Omics`` column is absent, the file is ``omics/<ID>.csv``. Fold columns hold
    ``train``/``val``; in the reference's 5-fold protocol ``val`` is the held-out fold that is
    *reported*, so robustmm treats it as the test split (``predefined_splits`` names it
    ``test``) and model selection must use a validation split carved from ``train``.
    All file and column names are constructor arguments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robustmm.config.schema import ConfigModel, PositiveInt
from robustmm.config.loader import format_validation_error

from robustmm.data.base import SYNTHETIC_MARKER, DataReport, MultimodalDataset, TaskSpec, synthetic_marker
from robustmm.data.batch import ModalitySpec
from robustmm.io import apply_umask, remove_stale_tmp, replace_synced, write_json_atomic
from robustmm.data.tables import (
    ColumnSelector,
    TableDataset,
    _ids,
    _named,
    censored_at_zero_notes,
    drop_identical_duplicates,
    assign_bins,
    parse_train_missing,
    quartile_bins,
    read_table,
    survival_bins,
    training_missingness,
    validate_options,
    validate_survival,
)
from robustmm.errors import ConfigError, DataError
from robustmm.names import check_name
from robustmm.text import counted, form

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# (a) PORPOISE tables

PORPOISE_GROUPS: dict[str, str] = {"rnaseq": "_rnaseq", "cnv": "_cnv", "mut": "_mut"}
PORPOISE_REQUIRED = ("case_id", "survival_months", "censorship")
PORPOISE_MODALITIES = ("clinical", "rnaseq", "cnv", "mut")


def _find_porpoise_file(path: Path, cohort: str | None) -> Path:
    if path.is_file():
        named = re.match(r"tcga_([a-z0-9]+)_", path.name.lower())
        if cohort and named and named.group(1) != cohort.lower():
            raise DataError(f"{path}: the file name says cohort {named.group(1)!r} but data.options.cohort is "
                            f"{cohort!r}; set the cohort to {named.group(1)!r} or point data.root at that cohort's file")
        return path
    if path.is_dir():
        if not cohort:
            found = _cohorts_in(path)
            example = found[0] if len(found) == 1 else "blca"
            raise DataError(f"{path} is a folder: name the cohort to pick tcga_<cohort>_*.csv[.zip] (in a study "
                            f"data.options.cohort: {example}; with data check --option cohort={example}); cohorts "
                            f"there: {found or 'none'}")
        hits = sorted(p for p in path.iterdir() if _table_cohort(p.name) == cohort.lower())
        if len(hits) != 1:
            raise DataError(f"{path}: expected one file tcga_{cohort.lower()}_*.csv[.zip] for cohort {cohort!r}, "
                            f"found {[p.name for p in hits]}; pass the file path instead")
        return hits[0]
    raise DataError(f"{path}: PORPOISE table not found; download tcga_<cohort>_all_clean.csv.zip from "
                    f"mahmoodlab/PORPOISE (datasets_csv_mutsig/) and pass its path")


def _table_cohort(name: str) -> str | None:
    """The cohort a PORPOISE table's file name holds (``tcga_blca_all_clean.csv.zip`` -> ``blca``), else None."""
    named = re.fullmatch(r"tcga_([a-z0-9]+)_.*\.(csv|csv\.zip|zip|csv\.gz)", name.lower())
    return named.group(1) if named else None


def _cohorts_in(folder: Path) -> list[str]:
    return sorted({c for p in folder.iterdir() if (c := _table_cohort(p.name))})


def porpoise_column_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Number of columns per omics group (``rnaseq``, ``cnv``, ``mut``)."""
    return {g: sum(str(c).endswith(sfx) for c in frame.columns) for g, sfx in PORPOISE_GROUPS.items()}


def load_porpoise_table(path: str | Path, cohort: str | None = None, *, per_slide: bool = False) -> pd.DataFrame:
    """Read a PORPOISE/MCAT table (plain CSV or zipped CSV), one row per patient (``case_id``).

    ``path`` is the file, or a folder holding ``tcga_<cohort>_*.csv[.zip]``. Checks the
    survival columns (numeric, non-negative, at least one death; ``censorship`` 1 = censored)
    and that all slides of a patient agree on them. ``per_slide=True`` keeps every slide row.
    The pandas index column written by the authors (``Unnamed: 0``) is dropped.
    """
    file = _find_porpoise_file(Path(path), cohort)
    frame = read_table(file)
    frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed:") or str(c) == ""])
    missing = [c for c in PORPOISE_REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{file}: missing {form(len(missing), 'column')} {missing}; a PORPOISE table needs "
                        f"{list(PORPOISE_REQUIRED)} and omics columns ending in _rnaseq/_cnv/_mut")
    if frame["case_id"].isna().any():
        rows = np.flatnonzero(frame["case_id"].isna().to_numpy()) + 1
        raise DataError(f"{file}: column 'case_id' is empty in {_named('row', rows)}; every row needs a patient id")
    frame["case_id"] = frame["case_id"].astype(str)
    conflicts = frame.groupby("case_id")[["survival_months", "censorship"]].nunique(dropna=False)
    bad = conflicts.index[(conflicts > 1).any(axis=1)].tolist()
    if bad:
        raise DataError(f"{file}: slides of {_named('patient', bad)} disagree on survival_months/censorship; "
                        f"fix the rows so each patient has one outcome")
    # slides of one patient repeat the patient's row: every column but slide_id must agree
    patients = drop_identical_duplicates(frame, "case_id", str(file), ignore=("slide_id",))
    events = 1 - pd.to_numeric(patients["censorship"], errors="coerce")
    events = events.where(pd.to_numeric(patients["censorship"], errors="coerce").isin([0, 1]), patients["censorship"])
    validate_survival(patients["survival_months"].tolist(), events.tolist(), patients["case_id"].tolist(),
                      str(file), "survival_months", "censorship")
    out = frame.reset_index(drop=True) if per_slide else patients
    out.attrs["source"] = str(file)
    return out


class PorpoiseDataset(TableDataset):
    """A PORPOISE/MCAT cohort as a survival :class:`TableDataset` (one item per patient).

    Modalities (any subset, in the given order):
    - ``clinical``: ``is_female``, ``age`` and a one-hot ``oncotree_code`` (the OncoTree
      cancer subtype — biology, so a legitimate covariate). The tissue-source ``site`` is an
      institution code, a batch effect rather than a patient property, and is added only with
      ``clinical_site=True``. The ``train`` column of the file is never a feature.
    - ``rnaseq`` / ``cnv`` / ``mut``: the columns ending in ``_rnaseq`` / ``_cnv`` / ``_mut``.

    The target is survival (``survival_months``; event = 1 − ``censorship``). Call
    :meth:`fit` (or ``fit_imputer``/``fit_scaler``/``fit_bins``) with the training indices;
    some cohorts have missing ages (LUAD), which the imputer fills with the train mean.
    ``signatures`` (pathway names, gene lists) is set from ``data.options.signatures``.
    ``train_missing`` removes modality groups from a fraction of the training patients (the
    train/test missing grid, see :class:`robustmm.data.tables.TableDataset`).
    """

    #: (signature names, gene symbols per signature) from data.options.signatures, or None
    signatures: tuple[list[str], list[list[str]]] | None = None

    def __init__(
        self,
        path: str | Path,
        modalities: Sequence[str] = PORPOISE_MODALITIES,
        *,
        cohort: str | None = None,
        clinical_site: bool = False,
        nan_policy: str = "impute",
        standardize: str = "continuous",
        n_bins: int = 4,
        train_missing: dict[str, float] | None = None,
        train_missing_seed: int = 0,
        clip: float | None = None,
    ) -> None:
        frame = load_porpoise_table(path, cohort, per_slide=True)
        source = frame.attrs["source"]
        self.slide_ids: dict[str, list[str]] = (
            frame.groupby("case_id")["slide_id"].apply(lambda s: [str(v) for v in s.dropna()]).to_dict()
            if "slide_id" in frame.columns else {}
        )
        unknown = [m for m in modalities if m not in PORPOISE_MODALITIES]
        if unknown:
            raise DataError(f"{source}: unknown PORPOISE modality {unknown}; choose from {list(PORPOISE_MODALITIES)}")
        selectors: dict[str, ColumnSelector] = {}
        categorical: list[str] = []
        for name in modalities:
            if name == "clinical":
                cols = [c for c in ("is_female", "age", "oncotree_code") if c in frame.columns]
                if clinical_site and "site" in frame.columns:
                    cols.append("site")
                if not cols:
                    raise DataError(f"{source}: no clinical column (is_female, age, oncotree_code) in the table")
                categorical += [c for c in ("oncotree_code", "site") if c in cols]
                selectors[name] = ColumnSelector(columns=tuple(cols))
            else:
                selectors[name] = ColumnSelector(suffix=PORPOISE_GROUPS[name])
        super().__init__(
            frame.drop_duplicates("case_id", keep="first"),  # slide rows agree (load_porpoise_table checked)
            id_column="case_id",
            modalities=selectors,
            target={"kind": "survival", "time": "survival_months", "censorship": "censorship"},
            categorical=categorical,
            dedupe=True,
            missing_from_nan=True,
            nan_policy=nan_policy,  # type: ignore[arg-type]
            standardize=standardize,  # type: ignore[arg-type]
            n_bins=n_bins,
            source_name=source,
            train_missing=train_missing,
            train_missing_seed=train_missing_seed,
            clip=clip,
        )
        self.root = Path(source)
        self.column_counts = porpoise_column_counts(frame)


def prepare_tcga(cohort: str, from_file: str | Path, datasets_dir: str | Path = "datasets") -> dict[str, Any]:
    """Validate a downloaded PORPOISE table and copy it to ``<datasets_dir>/tcga_<cohort>/``.

    The copy is written atomically (temporary file, then rename) and an existing file is
    only accepted when it is byte-identical; a different file is never overwritten. Writes
    ``PREPARED.json`` (source, sha256, counts) next to it. Returns a report dict:
    ``cohort, path, status ('copied' | 'unchanged'), patients, slides, deaths, censored,
    columns ({rnaseq, cnv, mut}), sha256``.
    """
    cohort = str(cohort).strip().lower()
    if not re.fullmatch(r"[a-z0-9_]+", cohort):
        raise DataError(f"cohort {cohort!r}: use a TCGA project code such as 'blca', 'luad', 'brca'")
    src = Path(from_file)
    if not src.is_file():
        raise DataError(f"{src}: file not found; download tcga_{cohort}_all_clean.csv.zip from mahmoodlab/PORPOISE "
                        f"(datasets_csv_mutsig/) and pass it with --from")
    named = re.match(r"tcga_([a-z0-9]+)_", src.name.lower())
    if named and named.group(1) != cohort:
        raise DataError(f"{src}: the file name says cohort {named.group(1)!r} but --cohort is {cohort!r}; "
                        f"pass the matching file or cohort")
    slides = load_porpoise_table(src, per_slide=True)
    patients = slides.drop_duplicates("case_id")
    counts = porpoise_column_counts(patients)
    if sum(counts.values()) == 0:
        raise DataError(f"{src}: no omics column ending in _rnaseq, _cnv or _mut; is this a PORPOISE table?")
    numeric_bad = [c for c in patients.columns if str(c).endswith(tuple(PORPOISE_GROUPS.values()))
                   and not pd.api.types.is_numeric_dtype(patients[c])]
    if numeric_bad:
        raise DataError(f"{src}: omics {form(len(numeric_bad), 'column')} {numeric_bad[:5]} "
                        f"{form(len(numeric_bad), 'is', 'are')} not numeric; the file is corrupt or not a PORPOISE "
                        "table")

    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out_dir = Path(datasets_dir) / f"tcga_{cohort}"
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out_dir, recursive=False)  # left by a preparation killed mid-copy
    dest = out_dir / src.name
    if dest.exists():
        if hashlib.sha256(dest.read_bytes()).hexdigest() != digest:
            raise DataError(f"{dest} already exists and differs from {src}; refusing to overwrite it — move or "
                            f"delete the existing file first if you really want to replace it")
        status = "unchanged"
    else:
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tmp_", suffix=src.suffix)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            apply_umask(tmp)
            replace_synced(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        status = "copied"
    synthetic = synthetic_marker(src.parent)
    if synthetic is not None and synthetic.get("file") not in (None, src.name):
        synthetic = None  # the marker describes another file of that folder
    if synthetic is not None:  # a generated table stays marked: every check and report must say SYNTHETIC DATA
        kept = synthetic_marker(out_dir)
        if kept is not None and kept != synthetic:
            raise DataError(f"{out_dir / SYNTHETIC_MARKER} already exists and differs from {src.parent / SYNTHETIC_MARKER}; "
                            "move or delete the existing folder first")
        write_json_atomic(out_dir / SYNTHETIC_MARKER, synthetic)
    deaths = int((pd.to_numeric(patients["censorship"]) == 0).sum())
    report: dict[str, Any] = {
        "cohort": cohort,
        "path": str(dest),
        "status": status,
        "patients": int(len(patients)),
        "slides": int(len(slides)),
        "deaths": deaths,
        "censored": int(len(patients) - deaths),
        "columns": counts,
        "sha256": digest,
        "synthetic": synthetic is not None,
    }
    info = out_dir / "PREPARED.json"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tmp_", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({**report, "source": str(src.resolve()), "format": "porpoise"}, fh, indent=2)
    apply_umask(tmp)
    replace_synced(tmp, info)
    return report


# ----------------------------------------------------------------------------------------------
# (b) DisPro layout


def read_signatures(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Pathway names and their genes (order kept, duplicates and blanks removed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: signatures file not found; it should hold one column per pathway with gene "
                        f"symbols down the rows")
    frame = read_table(path)
    names, genes = [], []
    for col in frame.columns:
        values = [str(v).strip() for v in frame[col].dropna().tolist()]
        values = list(dict.fromkeys(v for v in values if v))
        names.append(str(col))
        genes.append(values)
    if not names:
        raise DataError(f"{path}: no pathway column found")
    return names, genes


def signature_notes(source: str, unmatched: Sequence[str], n_genes: int, dropped: Sequence[str],
                    where: str) -> list[str]:
    """Notes (also logged as warnings) on signature genes that match nothing in ``where`` and on
    pathways left without any gene, so that a misspelt or foreign signatures file is seen."""
    notes = []
    if unmatched:
        notes.append(f"{source}: {len(unmatched)} of {counted(n_genes, 'signature gene')} "
                     f"{form(len(unmatched), 'matches', 'match')} nothing in {where} and "
                     f"{form(len(unmatched), 'is', 'are')} left out (e.g. {_ids(unmatched)})")
    if dropped:
        notes.append(f"{source}: {counted(len(dropped), 'pathway')} {form(len(dropped), 'has', 'have')} no gene in "
                     f"{where} and {form(len(dropped), 'is', 'are')} dropped: {_ids(dropped)}")
    for note in notes:
        log.warning("%s", note)
    return notes


def _stable_seed(*parts: Any) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def check_dispro_folder(root: Path, splits_file: str) -> None:
    """The DisPro folder and its splits file exist (what :class:`DisProDataset` reads first)."""
    if not root.is_dir():
        raise DataError(f"{root}: DisPro data folder not found")
    splits = root / splits_file
    if not splits.is_file():
        raise DataError(f"{splits}: splits file not found; the DisPro layout needs {splits.name} with columns ID, "
                        "Event, Status, WSI, Omics, Fold 0..K-1")


class DisProDataset(MultimodalDataset):
    """One split of one fold of a cohort in the DisPro layout (see the module docstring).

    Items are patients. Modalities:
    - ``wsi`` (kind ``bag``, shape (max_patches, F)): the patch features of all the patient's
      slides concatenated; ``valid`` marks real patches. Longer bags are subsampled: randomly
      when ``train`` (a pure function of seed, epoch and patient — see :meth:`set_epoch`),
      evenly spaced otherwise.
    - ``omics`` (kind ``bag``, shape (P, G_max)): one row per pathway, the pathway's genes in
      signature order, zero-padded to the largest pathway; ``valid`` (P,) marks pathways and
      :attr:`gene_mask` (P, G_max) marks the real (non-padding) genes of each row.

    The gene layout is the signatures intersected with the genes of the first omics file in
    the splits CSV (the reference does the same); unmeasured signature genes are listed in
    :attr:`unmeasured_genes` and pathways left empty in :attr:`dropped_pathways`. Every other
    patient file must then contain all layout genes with finite values.

    Target: ``{"time", "event" (1 = death), "bin"}`` with bins from the quartiles of the
    uncensored times of this fold's *training* patients (:attr:`bin_cuts`).
    """

    def __init__(
        self,
        root: str | Path,
        fold: int,
        split: str,
        *,
        modalities: Sequence[str] = ("wsi", "omics"),
        splits_file: str = "splits.csv",
        signatures_file: str = "signatures.csv",
        omics_dir: str = "omics",
        wsi_dir: str = "wsi",
        id_column: str = "ID",
        time_column: str = "Event",
        event_column: str | None = "Status",
        censorship_column: str | None = None,
        wsi_column: str = "WSI",
        omics_column: str = "Omics",
        fold_column: str = "Fold {fold}",
        gene_column: str = "Gene",
        value_column: str = "Value",
        max_patches: int = 4096,
        train: bool | None = None,
        seed: int = 0,
        allow_missing_omics: bool = False,
        allow_missing_wsi: bool = False,
        wsi_feat_dim: int | None = None,
        n_bins: int = 4,
        cache_omics: bool = True,
        val_fraction: float = 0.15,
        train_missing: dict[str, float] | None = None,
        train_missing_seed: int = 0,
    ) -> None:
        self.root = Path(root)
        check_dispro_folder(self.root, splits_file)
        unknown = [m for m in modalities if m not in ("wsi", "omics")]
        if unknown or not modalities:
            raise DataError(f"DisPro modalities must be a non-empty subset of ['wsi', 'omics'], got {list(modalities)}")
        if (event_column is None) == (censorship_column is None):
            raise DataError("give exactly one of event_column (1 = death) or censorship_column (1 = censored)")
        if max_patches < 1:
            raise DataError(f"max_patches must be >= 1, got {max_patches}")
        self.fold, self.split = int(fold), str(split)
        self.train = (self.split == "train") if train is None else bool(train)
        self.seed, self.epoch = int(seed), 0
        self.max_patches = int(max_patches)
        self.allow_missing_omics, self.allow_missing_wsi = allow_missing_omics, allow_missing_wsi
        self.gene_column, self.value_column = gene_column, value_column
        self.cache_omics = cache_omics
        self.n_bins = n_bins
        self.val_fraction = float(val_fraction)
        self.wsi_dir, self.omics_dir = self.root / wsi_dir, self.root / omics_dir
        self.splits_path = self.root / splits_file
        self._omics_cache: dict[int, np.ndarray] = {}

        rows = self._read_splits(id_column, time_column, event_column, censorship_column, fold_column)
        self._locate_files(rows, id_column, wsi_column, omics_column, modalities)
        self.report = DataReport(subjects_in_table=len(rows), subjects_used=len(rows),
                                 notes=censored_at_zero_notes(self._time, self._event, self._subjects,
                                                              str(self.splits_path), time_column))

        self.modalities: dict[str, ModalitySpec] = {}
        for name in modalities:
            if name == "wsi":
                self.wsi_feat_dim = wsi_feat_dim or self._probe_wsi_dim()
                self.modalities["wsi"] = ModalitySpec("wsi", "bag", (self.max_patches, self.wsi_feat_dim))
            else:
                self._build_gene_layout(self.root / signatures_file)
                self.modalities["omics"] = ModalitySpec("omics", "bag", tuple(self.gene_mask.shape))
        self.task = TaskSpec(kind="survival", num_classes=n_bins)
        self._natural_present = {k: v.copy() for k, v in self._present.items()}
        self.train_missing = parse_train_missing(train_missing or {}, list(self.modalities), str(self.splits_path))
        self.train_missing_seed = int(train_missing_seed)
        self.train_missing_counts: dict[str, int] = {}

    # -- construction ---------------------------------------------------------------------------

    def _read_splits(self, id_col: str, time_col: str, event_col: str | None, cens_col: str | None,
                     fold_column: str) -> pd.DataFrame:
        src = str(self.splits_path)
        frame = read_table(self.splits_path)
        fold_col = fold_column.format(fold=self.fold)
        status_col = event_col or cens_col
        missing = [c for c in (id_col, time_col, status_col) if c not in frame.columns]
        if missing:
            raise DataError(f"{src}: missing {form(len(missing), 'column')} {missing}; found {list(frame.columns)}. "
                            "Pass the column names (id_column, time_column, event_column/censorship_column) if they "
                            "differ")
        if fold_col not in frame.columns:
            folds = [c for c in frame.columns if re.match(re.escape(fold_column).replace(r"\{fold\}", r"\d+"), c)]
            raise DataError(f"{src}: no fold column {fold_col!r} (fold={self.fold}); available: {folds}")
        if frame[id_col].isna().any():
            rows = np.flatnonzero(frame[id_col].isna().to_numpy()) + 1
            raise DataError(f"{src}: column {id_col!r} is empty in {_named('row', rows)}; every row needs a patient id")
        frame[id_col] = frame[id_col].astype(str).str.strip()
        dup = frame[id_col][frame[id_col].duplicated()].unique().tolist()
        if dup:
            raise DataError(f"{src}: {_named('patient', dup)} {form(len(dup), 'appears', 'appear')} more than once; "
                            f"list each patient once (slides go in the WSI column separated by ';')")
        assignment = frame[fold_col].astype(object).where(frame[fold_col].notna(), None)
        assignment = assignment.map(lambda v: None if v is None else str(v).strip().lower())
        frame = frame[assignment.notna()].copy()
        frame["_split"] = assignment[assignment.notna()]
        values = sorted(set(frame["_split"]))
        # DisPro's 'val' fold is the reported held-out fold: accept 'test' for it
        aliases = {"test": "val"} if "val" in values and "test" not in values else {}
        self._aliases = aliases
        want = self.split.lower()
        want = aliases.get(want, want)
        if want != "all" and want not in values:
            raise DataError(f"{src}: split {self.split!r} not found in column {fold_col!r} (values: {values}); "
                            f"use one of them or 'all'")
        ids = frame[id_col].tolist()
        events_raw = frame[status_col]
        if cens_col is not None:
            num = pd.to_numeric(events_raw, errors="coerce")
            events_raw = events_raw.astype(object).where(~num.isin([0, 1]), 1 - num)
        where = f"{src} (fold {self.fold})"
        times, events = validate_survival(frame[time_col].tolist(), events_raw.tolist(), ids, where,
                                          time_col, status_col)
        frame["_time"], frame["_event"] = times, events
        train_rows = frame["_split"] == "train"
        if not train_rows.any():
            raise DataError(f"{src}: fold column {fold_col!r} has no 'train' patient; bins come from the training "
                            f"split")
        if frame.loc[train_rows, "_event"].sum() == 0:
            raise DataError(f"{where}: all training patients are censored (no Status == death); the survival bins "
                            f"and loss need deaths — check the Status coding (1 = death) or the fold assignment")
        self.bin_cuts = quartile_bins(frame.loc[train_rows, "_time"], frame.loc[train_rows, "_event"], self.n_bins)
        self._fold_rows = frame  # every patient of the fold: fixes the gene layout for all splits alike
        if want != "all":
            frame = frame[frame["_split"] == want]
            if len(frame) == 0:
                raise DataError(f"{where}: split {self.split!r} has no patient in column {fold_col!r}")
            if frame["_event"].sum() == 0:
                raise DataError(f"{where}: all {len(frame)} patients of split {self.split!r} are censored; the "
                                f"C-index is undefined without deaths — change the fold assignment")
        else:  # every split of the fold is used: each needs a death
            deaths = frame.groupby("_split")["_event"].sum()
            for name in deaths.index[deaths == 0]:
                shown = {v: k for k, v in aliases.items()}.get(name, name)
                raise DataError(f"{where}: all {int((frame['_split'] == name).sum())} patients of split "
                                f"{name!r}{f' (the {shown} split)' if shown != name else ''} in column "
                                f"{fold_col!r} are censored; the C-index is undefined without deaths — change "
                                f"the fold assignment")
        self._split_of = frame["_split"].tolist()
        self._subjects = frame[id_col].tolist()
        self._time = frame["_time"].to_numpy(np.float32)
        self._event = frame["_event"].to_numpy(np.float32)
        self._bins = assign_bins(self._time, self.bin_cuts)
        return frame.reset_index(drop=True)

    def _locate_files(self, rows: pd.DataFrame, id_col: str, wsi_col: str, omics_col: str,
                      modalities: Sequence[str]) -> None:
        src = str(self.splits_path)
        self._slides: list[list[Path]] = [[] for _ in range(len(rows))]
        self._omics_files: list[Path | None] = [None] * len(rows)
        if "wsi" in modalities:
            listing = sorted(self.wsi_dir.glob("*.pt")) if wsi_col not in rows.columns and self.wsi_dir.is_dir() else []
            for i, (pid, cell) in enumerate(zip(rows[id_col], rows[wsi_col] if wsi_col in rows.columns else [None] * len(rows))):
                if wsi_col in rows.columns:
                    names = [s.strip() for s in str(cell).split(";") if s.strip()] if isinstance(cell, str) else []
                    files = [self.wsi_dir / n for n in names]
                else:
                    files = [p for p in listing if p.stem == pid or re.match(re.escape(pid) + r"[-_.]", p.stem)]
                absent = [f for f in files if not f.is_file()]
                if absent and not self.allow_missing_wsi:
                    them = form(len(absent), "it", "them")
                    raise DataError(f"{src}: patient {pid}: slide {form(len(absent), 'file')} "
                                    f"{[str(f) for f in absent[:3]]} not found; add {them}, remove {them} from the "
                                    f"{wsi_col!r} column (an empty cell means no "
                                    f"WSI), or pass allow_missing_wsi=True")
                self._slides[i] = [f for f in files if f.is_file()]
        if "omics" in modalities:
            for i, pid in enumerate(rows[id_col]):
                if omics_col in rows.columns:
                    cell = rows[omics_col].iloc[i]
                    name = cell.strip() if isinstance(cell, str) and cell.strip() else None
                else:
                    name = f"{pid}.csv"
                if name is None:
                    continue  # empty cell: omics naturally missing
                file = self.omics_dir / name
                if not file.is_file():
                    if self.allow_missing_omics:
                        continue
                    raise DataError(f"{src}: patient {pid}: omics file {file} not found; add it, empty the "
                                    f"{omics_col!r} cell to mark omics as missing, or pass allow_missing_omics=True")
                self._omics_files[i] = file
        self._reference_omics: tuple[Path, str] | None = None
        if "omics" in modalities:
            all_rows = self._fold_rows
            for pid, cell in zip(all_rows[id_col], all_rows[omics_col] if omics_col in all_rows.columns
                                 else [f"{p}.csv" for p in all_rows[id_col]]):
                if isinstance(cell, str) and cell.strip() and (self.omics_dir / cell.strip()).is_file():
                    self._reference_omics = (self.omics_dir / cell.strip(), str(pid))
                    break
        self._present = {
            "wsi": np.asarray([bool(s) for s in self._slides]),
            "omics": np.asarray([f is not None for f in self._omics_files]),
        }

    def _load_slide(self, file: Path, pid: str) -> torch.Tensor:
        try:
            x = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            # torch's own text suggests weights_only=False, i.e. running the file's code: name the object only
            lines = [line for line in str(exc).splitlines() if "GLOBAL" in line] or [type(exc).__name__]
            raise DataError(f"{file} (patient {pid}): refused: the file holds Python objects other than tensors "
                            f"({lines[0].strip()[:200]}) and loading them could run code from it; save the patch "
                            f"features as a plain tensor (torch.save(features, path))") from None
        except Exception as exc:  # torch raises many types for corrupt files
            raise DataError(f"{file} (patient {pid}): cannot load the patch-feature tensor ({exc}); re-extract "
                            f"the features or remove the file from the WSI column") from exc
        if isinstance(x, dict) and len(x) == 1:
            x = next(iter(x.values()))
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"{file} (patient {pid}): expected a 2-D tensor (patches x features), got {shape}")
        if x.shape[1] == 0:  # a bag without features would train a model on nothing, silently
            raise DataError(f"{file} (patient {pid}): the tensor has 0 features per patch (shape {tuple(x.shape)}); "
                            f"re-extract the patch features")
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise DataError(f"{file} (patient {pid}): {counted(bad, 'patch feature value')} "
                            f"{form(bad, 'is', 'are')} NaN or infinite; re-extract the features or remove the file "
                            "from the WSI column")
        return x.float()

    def _probe_wsi_dim(self) -> int:
        for i, slides in enumerate(self._slides):
            if slides:
                return int(self._load_slide(slides[0], self._subjects[i]).shape[1])
        raise DataError(f"{self.splits_path}: no patient of fold {self.fold} split {self.split!r} has a slide; "
                        f"pass wsi_feat_dim=... or drop the 'wsi' modality")

    def _build_gene_layout(self, signatures: Path) -> None:
        names, genes = read_signatures(signatures)
        first = self._reference_omics[0] if self._reference_omics else None
        measured: set[str] | None = None
        if self._reference_omics is not None:
            measured = set(self._read_omics_frame(*self._reference_omics).index)
        self.unmeasured_genes: list[str] = []
        self.dropped_pathways: list[str] = []
        self.pathway_names: list[str] = []
        layout: list[list[str]] = []
        for name, g in zip(names, genes):
            keep = [x for x in g if measured is None or x in measured]
            self.unmeasured_genes += [x for x in g if measured is not None and x not in measured]
            if keep:
                self.pathway_names.append(name)
                layout.append(keep)
            else:
                self.dropped_pathways.append(name)
        if not layout:
            raise DataError(f"{signatures}: no signature gene appears in {first}; check that the gene symbols of "
                            f"the signatures and of the omics files use the same naming")
        self.unmeasured_genes = list(dict.fromkeys(self.unmeasured_genes))
        self.report.notes += signature_notes(str(signatures), self.unmeasured_genes,
                                             len({x for g in genes for x in g}), self.dropped_pathways,
                                             f"{first} (the omics file that fixes the gene layout)")
        self.pathway_sizes = [len(g) for g in layout]
        g_max = max(self.pathway_sizes)
        self.gene_mask = torch.zeros(len(layout), g_max, dtype=torch.bool)
        rows, cols, flat = [], [], []
        for p, g in enumerate(layout):
            self.gene_mask[p, : len(g)] = True
            rows += [p] * len(g)
            cols += list(range(len(g)))
            flat += g
        self._gene_rows, self._gene_cols = np.asarray(rows), np.asarray(cols)
        self.layout_genes: list[str] = flat

    def _read_omics_frame(self, file: Path, pid: str) -> pd.Series:
        try:
            frame = pd.read_csv(file)
        except Exception as exc:
            raise DataError(f"{file} (patient {pid}): cannot read the omics CSV ({exc})") from exc
        missing = [c for c in (self.gene_column, self.value_column) if c not in frame.columns]
        if missing:
            raise DataError(f"{file} (patient {pid}): missing {form(len(missing), 'column')} {missing}; found "
                            f"{list(frame.columns)}. Pass gene_column/value_column if the file uses other names")
        frame = frame.dropna(subset=[self.gene_column])
        frame[self.gene_column] = frame[self.gene_column].astype(str).str.strip()
        values = pd.to_numeric(frame[self.value_column], errors="coerce")
        return pd.Series(values.to_numpy(np.float64), index=frame[self.gene_column].to_numpy())

    def fit(self, train_indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Apply ``train_missing`` to the training patients (from the natural presence each time);
        the on-disk format needs no other training statistics."""
        if not self.train_missing:
            return {}
        present, self.train_missing_counts = training_missingness(
            self._subjects, {m: self._natural_present[m] for m in self.modalities}, train_indices,
            self.train_missing, self.train_missing_seed)
        self._present.update(present)
        return {"train_missing": dict(self.train_missing_counts)}

    # -- per sample -----------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Change the random patch subsample drawn in training mode (reproducible per epoch)."""
        self.epoch = int(epoch)

    def _omics_vector(self, index: int) -> np.ndarray:
        if index in self._omics_cache:
            return self._omics_cache[index]
        file, pid = self._omics_files[index], self._subjects[index]
        assert file is not None
        series = self._read_omics_frame(file, pid)
        if series.index.has_duplicates:  # a gene listed twice is read once, if both rows agree
            used = series[series.index.isin(self.layout_genes)]
            spread = used.groupby(level=0).nunique(dropna=False)
            conflicting = spread.index[spread > 1].tolist()
            if conflicting:
                raise DataError(f"{file} (patient {pid}): {_named('gene', conflicting)} "
                                f"{form(len(conflicting), 'is', 'are')} listed more than once with different "
                                f"values; robustmm does not guess which row is right: keep one row per gene")
            series = series[~series.index.duplicated(keep="first")]
        values = series.reindex(self.layout_genes).to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            genes = [g for g, b in zip(self.layout_genes, bad) if b]
            raise DataError(f"{file} (patient {pid}): {counted(len(genes), 'signature gene')} missing or not a "
                            f"finite number (e.g. {genes[:5]}); every omics file must list the same genes with "
                            "numeric values")
        vec = values.astype(np.float32)
        if self.cache_omics:
            self._omics_cache[index] = vec
        return vec

    def _omics(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.gene_mask.shape[0]
        out = torch.zeros(tuple(self.gene_mask.shape))
        if not self._present["omics"][index]:
            return out, torch.zeros(p, dtype=torch.bool)
        out[self._gene_rows, self._gene_cols] = torch.from_numpy(self._omics_vector(index))
        return out, torch.ones(p, dtype=torch.bool)

    def _slide_bag(self, index: int) -> torch.Tensor:
        """Every patch of the patient's slides (N, F), each slide checked against ``wsi_feat_dim``."""
        slides, pid = self._slides[index], self._subjects[index]
        parts = []
        for f in slides:
            x = self._load_slide(f, pid)
            if x.shape[1] != self.wsi_feat_dim:
                raise DataError(f"{f} (patient {pid}): {x.shape[1]} features per patch, expected "
                                f"{self.wsi_feat_dim} like the other slides; extract all slides with one model")
            parts.append(x)
        bag = torch.cat(parts, dim=0)
        if bag.shape[0] == 0:
            raise DataError(f"{[str(f) for f in slides]} (patient {pid}): the slides hold no patch; remove them "
                            f"from the WSI column to mark the WSI as missing")
        return bag

    def read_all(self, progress: bool = True) -> None:
        """Read every slide bag and omics file the way samples are read, one patient at a time (a
        bag is dropped before the next is loaded), so that ``robustmm data check`` finds a refused,
        corrupt or mis-shaped file before a study does."""
        from tqdm.auto import tqdm

        for i in tqdm(range(len(self)), desc="reading files", unit="patient", disable=not progress, leave=False):
            if "wsi" in self.modalities and self._slides[i]:
                self._slide_bag(i)
            if "omics" in self.modalities and self._omics_files[i] is not None:
                self._omics_vector(i)

    def _wsi(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        out = torch.zeros(self.max_patches, self.wsi_feat_dim)
        valid = torch.zeros(self.max_patches, dtype=torch.bool)
        if not self._slides[index] or not self._present["wsi"][index]:  # naturally or training-set missing
            return out, valid, 0
        pid = self._subjects[index]
        bag = self._slide_bag(index)
        n = bag.shape[0]
        if n > self.max_patches:
            if self.train:
                rng = np.random.default_rng(_stable_seed(self.seed, self.epoch, pid))
                keep = np.sort(rng.choice(n, self.max_patches, replace=False))
            else:
                keep = np.linspace(0, n - 1, self.max_patches).round().astype(np.int64)
            bag = bag[torch.from_numpy(keep)]
        m = bag.shape[0]
        out[:m] = bag
        valid[:m] = True
        return out, valid, n

    def __len__(self) -> int:
        return len(self._subjects)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        inputs, present, valid = {}, {}, {}
        meta: dict[str, Any] = {"subject": self._subjects[index], "fold": self.fold, "split": self._split_of[index]}
        for name in self.modalities:
            if name == "wsi":
                x, v, n = self._wsi(index)
                meta["n_patches"] = n
            else:
                x, v = self._omics(index)
            inputs[name], valid[name] = x, v
            present[name] = bool(self._present[name][index])
        target = {
            "time": torch.tensor(float(self._time[index])),
            "event": torch.tensor(float(self._event[index])),
            "bin": torch.tensor(int(self._bins[index])),
        }
        return {"inputs": inputs, "present": present, "valid": valid, "target": target, "meta": meta}

    # -- dataset protocol -----------------------------------------------------------------------

    def subject_ids(self) -> list[str]:
        return list(self._subjects)

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {k: self._present[k].copy() for k in self.modalities}

    def stratify_labels(self) -> np.ndarray:
        return self._event.astype(np.int64)

    @property
    def times(self) -> np.ndarray:
        return self._time.copy()

    @property
    def events(self) -> np.ndarray:
        return self._event.copy()

    def predefined_splits(self) -> dict[str, list[int]] | None:
        """With ``split='all'``: ``train``/``val``/``test`` indices of this fold.

        DisPro's ``val`` fold is reported, so it becomes ``test``; ``val`` is a deterministic,
        event-stratified ``val_fraction`` of the fold's training patients (model selection
        never sees the reported fold). Other split datasets return None.
        """
        if self.split.lower() != "all":
            return None
        rename = {v: k for k, v in self._aliases.items()}
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self._split_of):
            out.setdefault(rename.get(s, s), []).append(i)
        train = np.asarray(out.get("train", []), dtype=np.int64)
        rng = np.random.default_rng(_stable_seed("dispro-val", self.seed, self.fold))
        val: list[int] = []
        for flag in (0.0, 1.0):  # stratify by event so val has deaths when train has
            group = train[self._event[train] == flag]
            k = int(round(self.val_fraction * len(group)))
            val += rng.permutation(group)[:k].tolist()
        val_set = set(val)
        out["train"] = [i for i in train.tolist() if i not in val_set]
        out["val"] = sorted(val)
        out.setdefault("test", [])
        return out


# ----------------------------------------------------------------------------------------------
# study configuration (data.kind: tcga_porpoise | dispro)


class _Options(ConfigModel):
    model_config = ConfigDict(extra="forbid")


class PorpoiseOptions(_Options):
    """``data.options`` of ``data.kind: tcga_porpoise``."""

    cohort: str | None = None
    modalities: list[Literal["clinical", "rnaseq", "cnv", "mut"]] = Field(
        default_factory=lambda: list(PORPOISE_MODALITIES), min_length=1)
    clinical_site: bool = False
    nan_policy: Literal["impute", "error"] = "impute"
    standardize: Literal["continuous", "all", "none"] = "continuous"
    n_bins: int = Field(4, ge=2)
    survival_head: Literal["discrete", "cox"] = "discrete"
    clip: float | None = Field(None, gt=0)
    train_missing: dict[str, float] = Field(default_factory=dict)
    train_missing_seed: int = 0
    #: optional pathway/signature file in the MCAT/PORPOISE signatures CSV format (one column per
    #: signature, gene symbols down the rows); methods that group omics columns (DisPro) group
    #: the ``<gene>_rnaseq`` / ``_cnv`` / ``_mut`` columns by it. The features are unchanged.
    signatures: str | None = None

    @field_validator("cohort")
    @classmethod
    def _cohort_code(cls, value: str | None) -> str | None:
        # part of a file name (tcga_<cohort>_all_clean.csv.zip), which data.synthetic writes
        return None if value is None else check_name(value, "cohort")


class PorpoiseSynthOptions(_Options):
    """``data.synthetic`` of ``data.kind: tcga_porpoise`` (see ``write_synthetic_porpoise``)."""

    patients: int = Field(120, ge=20)
    seed: int = 0
    n_rnaseq: int = Field(40, ge=5)
    n_cnv: int = Field(12, ge=3)
    n_mut: int = Field(10, ge=2)
    age_missing: float = Field(0.0, ge=0.0, le=1.0)
    #: mechanism knobs (robustmm.data.synth.tcga): signal strength per omics group, and the
    #: fraction of each group's latent that all groups share
    signal: dict[Literal["rnaseq", "cnv", "mut"], Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    shared: float = Field(1.0, ge=0.0, le=1.0)


class DisProOptions(_Options):
    """``data.options`` of ``data.kind: dispro`` (names of files and columns of the layout)."""

    fold: int = Field(0, ge=0)
    modalities: list[Literal["wsi", "omics"]] = Field(default_factory=lambda: ["wsi", "omics"], min_length=1)
    splits_file: str = "splits.csv"
    signatures_file: str = "signatures.csv"
    omics_dir: str = "omics"
    wsi_dir: str = "wsi"
    id_column: str = "ID"
    time_column: str = "Event"
    event_column: str | None = "Status"
    censorship_column: str | None = None
    wsi_column: str = "WSI"
    omics_column: str = "Omics"
    fold_column: str = "Fold {fold}"
    gene_column: str = "Gene"
    value_column: str = "Value"
    max_patches: int = Field(4096, ge=1)
    allow_missing_omics: bool = False
    allow_missing_wsi: bool = False
    wsi_feat_dim: int | None = Field(None, ge=1)
    n_bins: int = Field(4, ge=2)
    survival_head: Literal["discrete", "cox"] = "discrete"
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    seed: int = 0
    train_missing: dict[str, float] = Field(default_factory=dict)
    train_missing_seed: int = 0


class DisProSynthOptions(_Options):
    """``data.synthetic`` of ``data.kind: dispro`` (see ``write_synthetic_dispro``)."""

    patients: int = Field(60, ge=10)
    folds: int = Field(5, ge=2)
    seed: int = 0
    wsi_feat_dim: int = Field(32, ge=2)
    patches: tuple[PositiveInt, PositiveInt] = (20, 60)
    pathways: int = Field(8, ge=2)
    genes_per_pathway: tuple[PositiveInt, PositiveInt] = (3, 12)
    wsi_missing: float = Field(0.0, ge=0.0, le=1.0)
    omics_missing: float = Field(0.0, ge=0.0, le=1.0)
    #: mechanism knob (robustmm.data.synth.tcga): weights of z_shared / z_omics / z_wsi in the risk
    risk_weights: dict[Literal["shared", "omics", "wsi"], Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)

    @field_validator("patches", "genes_per_pathway")
    @classmethod
    def _min_max(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError(f"give [min, max] with 1 <= min <= max, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _what_the_generator_needs(self) -> "DisProSynthOptions":
        if self.patients < 2 * self.folds:
            raise ValueError(f"{self.patients} patients are too few for {self.folds} folds (2 per fold at least): "
                             f"raise patients to {2 * self.folds} or lower folds")
        if self.wsi_missing + self.omics_missing > 1:
            raise ValueError(f"wsi_missing + omics_missing = {self.wsi_missing + self.omics_missing:g} > 1, but no "
                             "patient misses both; lower one of them")
        return self


def _synthetic_options(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, "data.synthetic", prefix="data.synthetic")) from None


def build_porpoise_from_config(cfg: Any, progress: bool = True) -> PorpoiseDataset:
    """``data.kind: tcga_porpoise``: ``data.root`` is a PORPOISE table or a folder holding
    ``tcga_<cohort>_*.csv.zip`` (``data.options.cohort``). With ``data.synthetic`` and no
    ``data.root``, a synthetic table is written there first (cohort ``syn``)."""
    from robustmm.data.registry import create_once
    from robustmm.data.synth.tcga import write_synthetic_porpoise

    opts = validate_options(PorpoiseOptions, cfg.options, f"data (kind {cfg.kind})")
    root = Path(cfg.root)
    cohort = opts.cohort
    if cfg.synthetic is not None:
        syn = _synthetic_options(PorpoiseSynthOptions, cfg.synthetic)
        cohort = cohort or "syn"
        name = f"tcga_{cohort.lower()}_all_clean.csv.zip"
        create_once(root, lambda d: write_synthetic_porpoise(d / name, syn.patients, syn.seed, n_rnaseq=syn.n_rnaseq,
                                                            n_cnv=syn.n_cnv, n_mut=syn.n_mut,
                                                            age_missing=syn.age_missing, signal=dict(syn.signal),
                                                            shared=syn.shared))
        check_porpoise_synthetic(cfg)
    elif not root.exists():
        raise DataError(f"data.root {root} does not exist. Download tcga_<cohort>_all_clean.csv.zip from "
                        f"mahmoodlab/PORPOISE (datasets_csv_mutsig/) and run 'robustmm data prepare tcga --cohort "
                        f"<cohort> --from <file>', then set data.root to datasets/tcga_<cohort> (or to the file)")
    dataset = PorpoiseDataset(root, opts.modalities, cohort=cohort, clinical_site=opts.clinical_site,
                              nan_policy=opts.nan_policy, standardize=opts.standardize,
                              n_bins=survival_bins(opts.n_bins, opts.survival_head),
                              train_missing=opts.train_missing, train_missing_seed=opts.train_missing_seed,
                              clip=opts.clip)
    if opts.signatures is not None:
        try:
            dataset.signatures = read_signatures(opts.signatures)
        except DataError as err:
            raise DataError(f"data.options.signatures: {err}") from None
        omics = [n for m in opts.modalities if m != "clinical" for n in dataset.feature_names.get(m, [])]
        if omics:
            # a column matches by its name or its name without the last _suffix (as DisPro's groups do)
            symbols = {s for n in omics for s in (n.upper(), re.sub(r"_[^_]*$", "", n).upper())}
            names, genes = dataset.signatures
            unmatched = list(dict.fromkeys(g for gs in genes for g in gs if g.upper() not in symbols))
            every = {g for gs in genes for g in gs}
            if len(unmatched) == len(every):
                raise DataError(f"data.options.signatures: no gene of {opts.signatures} matches an omics column "
                                f"(columns look like {omics[:3]}); the rows must be gene symbols such as TP53, "
                                f"matching TP53_rnaseq / TP53_cnv / TP53_mut")
            missed = set(unmatched)
            dropped = [p for p, gs in zip(names, genes) if all(g in missed for g in gs)]
            groups = ", ".join(m for m in opts.modalities if m != "clinical")
            dataset.report.notes += signature_notes(f"data.options.signatures {opts.signatures}", unmatched,
                                                    len(every), dropped, f"the omics columns ({groups})")
    return dataset


def check_porpoise_root(cfg: Any) -> None:
    """The PORPOISE table data.root names, or holds for the cohort, exists (robustmm.data.registry.check_data_root:
    before a run folder is made)."""
    cohort = validate_options(PorpoiseOptions, cfg.options, f"data (kind {cfg.kind})").cohort
    _find_porpoise_file(Path(cfg.root), cohort or ("syn" if cfg.synthetic is not None else None))


def check_dispro_root(cfg: Any) -> None:
    """The DisPro folder data.root and its splits file exist (robustmm.data.registry.check_data_root: before a
    run folder is made)."""
    opts = validate_options(DisProOptions, cfg.options, f"data (kind {cfg.kind})")
    check_dispro_folder(Path(cfg.root), opts.splits_file)


def build_dispro_from_config(cfg: Any, progress: bool = True) -> DisProDataset:
    """``data.kind: dispro``: every patient of fold ``data.options.fold`` of a DisPro-layout folder
    (its ``val`` fold is the test split; validation is carved from ``train``). With
    ``data.synthetic`` and no ``data.root``, a synthetic cohort is written there first."""
    from robustmm.data.registry import create_once
    from robustmm.data.synth.tcga import write_synthetic_dispro

    opts = validate_options(DisProOptions, cfg.options, f"data (kind {cfg.kind})")
    if (opts.event_column is None) == (opts.censorship_column is None):
        raise ConfigError("data.options: give exactly one of event_column (1 = death) or censorship_column "
                          "(1 = censored); set the other to null")
    root = Path(cfg.root)
    if cfg.synthetic is not None:
        syn = _synthetic_options(DisProSynthOptions, cfg.synthetic)
        create_once(root, lambda d: write_synthetic_dispro(
            d, syn.patients, syn.folds, syn.seed, syn.wsi_feat_dim, tuple(syn.patches), syn.pathways,
            tuple(syn.genes_per_pathway), syn.wsi_missing, syn.omics_missing, risk_weights=dict(syn.risk_weights)))
        check_dispro_synthetic(cfg)
    elif not root.exists():
        raise DataError(f"data.root {root} does not exist; it must be a folder in the DisPro layout (splits.csv, "
                        f"signatures.csv, omics/, wsi/), or give data.synthetic to generate one")
    return DisProDataset(
        root, opts.fold, "all", modalities=opts.modalities, splits_file=opts.splits_file,
        signatures_file=opts.signatures_file, omics_dir=opts.omics_dir, wsi_dir=opts.wsi_dir,
        id_column=opts.id_column, time_column=opts.time_column, event_column=opts.event_column,
        censorship_column=opts.censorship_column, wsi_column=opts.wsi_column, omics_column=opts.omics_column,
        fold_column=opts.fold_column, gene_column=opts.gene_column, value_column=opts.value_column,
        max_patches=opts.max_patches, seed=opts.seed, allow_missing_omics=opts.allow_missing_omics,
        allow_missing_wsi=opts.allow_missing_wsi, wsi_feat_dim=opts.wsi_feat_dim,
        n_bins=survival_bins(opts.n_bins, opts.survival_head), val_fraction=opts.val_fraction,
        train_missing=opts.train_missing, train_missing_seed=opts.train_missing_seed)


def check_porpoise_synthetic(cfg: Any) -> None:
    """Refuse a synthetic table written with other generator arguments (knobs included); also run by
    robustmm.data.registry.check_data_root, before a run folder is made."""
    from robustmm.data.registry import check_synthetic_matches
    from robustmm.data.synth.tcga import _porpoise_signal

    syn = _synthetic_options(PorpoiseSynthOptions, cfg.synthetic)
    cohort = validate_options(PorpoiseOptions, cfg.options, f"data (kind {cfg.kind})").cohort or "syn"
    name = f"tcga_{cohort.lower()}_all_clean.csv.zip"
    root = Path(cfg.root)
    folder = root if root.is_dir() else root.parent
    check_synthetic_matches(folder, {"seed": syn.seed, "n_patients": syn.patients,
                                     "signal": _porpoise_signal(dict(syn.signal)), "shared": float(syn.shared)},
                            defaults={"signal": _porpoise_signal(None), "shared": 1.0}, file=name)


def check_dispro_synthetic(cfg: Any) -> None:
    """Refuse a synthetic DisPro folder written with other generator arguments; also run by
    robustmm.data.registry.check_data_root, before a run folder is made."""
    from robustmm.data.registry import check_synthetic_matches
    from robustmm.data.synth.tcga import _dispro_weights

    syn = _synthetic_options(DisProSynthOptions, cfg.synthetic)
    check_synthetic_matches(Path(cfg.root), {"seed": syn.seed, "n_patients": syn.patients, "n_folds": syn.folds,
                                   "wsi_missing": syn.wsi_missing, "omics_missing": syn.omics_missing,
                                   "risk_weights": _dispro_weights(dict(syn.risk_weights))},
                            defaults={"risk_weights": _dispro_weights(None)})

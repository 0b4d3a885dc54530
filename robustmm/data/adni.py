"""ADNI-style MCI-conversion data: an ADNIMERGE-like visit table plus T1 MRI and optional
FDG-PET NIfTI per subject (found through a manifest CSV or folder patterns).

Label: pMCI (1) = MCI at baseline and dementia at a visit within ``horizon_months``;
sMCI (0) = MCI at baseline, no dementia within the horizon, and followed up to at least the
horizon. Anyone else (no baseline visit at month 0, not MCI at baseline, or lost to follow-up
before the horizon without converting) has no label and is excluded, with a count in the data report. An explicit label
column on the baseline row overrides the derivation. Time to conversion: months of the first
dementia visit (event 1), else the last follow-up (event 0). Diagnoses are read from ADNIMERGE's
codes (DX: CN/MCI/Dementia; DX_bl: EMCI/LMCI/SMC/AD; older DX: NL and transitions such as
"MCI to Dementia", read as the diagnosis reached); any other value stops loading.

Naturally missing PET is ``present = False`` (never zeros that look like a scan).

Repeated rows: ADNIMERGE has one row per visit. Two rows of one subject at the same visit
(same months since baseline) that agree on the diagnosis, label and clinical columns are
counted once (noted in the data report); if they disagree (e.g. a second baseline row with a
dementia diagnosis) loading stops with an error naming the subjects and visits, since either
row could flip the label. The manifest must list each subject once.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd
import torch

from robustmm.config.schema import AdniDataConfig
from robustmm.data.base import DataReport, MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.data.tables import read_table
from robustmm.data.volumes import cache_key, load_volumes
from robustmm.errors import DataError
from robustmm.io import load_torch, remove_abandoned_tmp, save_torch_shared
from robustmm.text import counted, form

log = logging.getLogger(__name__)

# diagnosis codes of ADNIMERGE's DX (CN, MCI, Dementia), DX_bl (CN, SMC, EMCI, LMCI, AD) and older
# DX (NL, ...), lower-cased; an older DX transition ("MCI to Dementia") counts as the diagnosis reached
DEMENTIA = {"dementia", "ad", "alzheimer's disease"}
MCI = {"mci", "emci", "lmci"}
NORMAL = {"cn", "nl", "smc"}
PMCI_NAMES = {"1", "pmci", "progressive", "converter", "true", "yes"}
SMCI_NAMES = {"0", "smci", "stable", "nonconverter", "non-converter", "false", "no"}


def check_root(cfg: AdniDataConfig) -> None:
    """The folder data.root and the files read first there (the clinical table, the manifest when one is
    set) exist; robustmm.runguard checks this before a run folder is made, the loader when it starts."""
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; set data.root to your ADNI folder "
                        "(or give data.synthetic to create a synthetic cohort there)")
    if not (root / cfg.table).is_file():
        raise DataError(f"clinical table {root / cfg.table} does not exist; set data.table (relative to data.root)")
    if cfg.manifest and not (root / cfg.manifest).is_file():
        raise DataError(f"manifest {root / cfg.manifest} does not exist; set data.manifest, or set it to null and "
                        "give data.mri_pattern / data.pet_pattern")


def manifest_path(root: Path, text: str) -> Path:
    """A manifest path under data.root; a path written on Windows (backslashes) is read as one
    when the path as written does not exist."""
    path = root / text
    if "\\" in text and not path.exists():
        return root / PureWindowsPath(text).as_posix()
    return path


class AdniDataset(MultimodalDataset):
    """MRI + PET volumes and a clinical vector per MCI subject (binary pMCI/sMCI task)."""

    def __init__(self, cfg: AdniDataConfig, progress: bool = True) -> None:
        self.cfg = cfg
        self.root = Path(cfg.root)
        self.report = DataReport()
        check_root(cfg)
        table = self._read_table()
        subjects, labels, times, events, baseline = self._derive_labels(table)
        mri_paths, pet_paths = self._locate_images(subjects, set(table[cfg.subject_column]))
        keep = [s for s in subjects if s in mri_paths]
        idx = [subjects.index(s) for s in keep]
        self.subjects = keep
        self.labels = np.asarray([labels[i] for i in idx], dtype=np.int64)
        self.times = np.asarray([times[i] for i in idx], dtype=np.float32)
        self.events = np.asarray([events[i] for i in idx], dtype=np.float32)
        if not keep:
            reasons = {k: len(v) for k, v in self.report.excluded.items()}
            raise DataError(f"{self._table_path}: no usable subject ({self.report.subjects_in_table} in the table; "
                            f"excluded: {reasons or 'none'}); check the table has rows, data.diagnosis_column, "
                            "data.horizon_months and the image files")
        if len(set(self.labels.tolist())) < 2:
            only = "pMCI" if self.labels.size and self.labels[0] == 1 else "sMCI"
            raise DataError(f"{self._table_path}: every usable subject is {only}; a classifier needs both "
                            f"classes (check data.diagnosis_column, data.horizon_months or data.label_column)")
        self.clinical_names, raw_clin = self._clinical_matrix(baseline.loc[keep])
        self._clin_raw = raw_clin
        self._clin_nan = ~np.isfinite(raw_clin)
        self._clin_mean = np.zeros(raw_clin.shape[1], dtype=np.float32)
        self._clin_std = np.ones(raw_clin.shape[1], dtype=np.float32)
        self.has_pet = np.asarray([pet_paths.get(s) is not None for s in keep])
        self.mri, self.pet, self.pet_row = self._load_volumes([mri_paths[s] for s in keep],
                                                              [pet_paths.get(s) for s in keep], progress)
        self.report.subjects_used = len(keep)
        shape = (1, *cfg.volume_shape)
        self.modalities = {
            "mri": ModalitySpec("mri", "volume", shape),
            "pet": ModalitySpec("pet", "volume", shape),
            "clinical": ModalitySpec("clinical", "table", (len(self.clinical_names),)),
        }
        self.task = TaskSpec("binary", 2, ("sMCI", "pMCI"))
        self.fitted = False

    # ------------------------------------------------------------------ table and labels
    @property
    def _table_path(self) -> Path:
        return self.root / self.cfg.table

    def _read_table(self) -> pd.DataFrame:
        path = self._table_path
        try:
            table = read_table(path)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read clinical table {path}: {exc}") from None
        c = self.cfg
        needed = [c.subject_column, c.months_column, c.diagnosis_column, *c.clinical_columns]
        needed += [c.label_column] if c.label_column else []
        missing = [col for col in needed if col not in table.columns]
        if missing:
            hints = {m: difflib.get_close_matches(m, list(table.columns), n=1) for m in missing}
            hint_txt = "; ".join(f"'{m}'" + (f" (did you mean '{h[0]}'?)" if h else "") for m, h in hints.items())
            raise DataError(f"{path}: missing {form(len(missing), 'column')} {hint_txt}. Fix the table or the "
                            "data.*_column / data.clinical_columns keys")
        table[c.subject_column] = self._subject_ids(table, path)
        table[c.months_column] = self._months(table)
        return self._repeated_visits(table)

    def _subject_ids(self, table: pd.DataFrame, path: Path) -> pd.Series:
        """Subject ids as text. A row without one is refused: it was read as a subject called 'nan', and
        with numeric ids its empty cell turned every id into a float (1000.0) that no manifest row
        matched."""
        col = self.cfg.subject_column
        ids = table[col]
        empty = ids.isna() | (ids.astype(str).str.strip() == "")
        if empty.any():
            rows = [int(i) + 2 for i in np.flatnonzero(empty.to_numpy())[:5]]  # + header, 1-based
            n = int(empty.sum())
            raise DataError(f"{path}: {counted(n, 'row')} {form(n, 'has', 'have')} no {col} "
                            f"({form(len(rows), 'file line')} {', '.join(map(str, rows))}); every visit row needs its "
                            "subject id: fill it in or delete the row")
        return ids.astype(str).str.strip()

    def _months(self, table: pd.DataFrame) -> pd.Series:
        """Months since baseline per row: numbers, or VISCODE codes ('bl' = 0, 'm06' = 6). Any other
        value is refused (read as no month, a 'bl' row would silently lose the baseline); empty
        cells leave their rows out, with a note."""
        c = self.cfg
        raw = table[c.months_column]
        text = raw.astype(str).str.strip().str.lower()
        code = text.str.extract(r"^(?:m(\d+)|(bl))$")
        months = pd.to_numeric(raw, errors="coerce")
        months = months.where(months.notna(), pd.to_numeric(code[0], errors="coerce").where(code[1].isna(), 0.0))
        bad = months.isna() & raw.notna() & (text != "")
        if bad.any():
            raise DataError(f"{self._table_path}: column '{c.months_column}' has value {raw[bad].iloc[0]!r} for "
                            f"subject {table.loc[bad, c.subject_column].iloc[0]} "
                            f"({counted(int(bad.sum()), 'such row')}); "
                            "it must hold months since baseline: numbers, or VISCODE codes bl, m06, m12, ... "
                            "Fix or drop those rows, or set data.months_column to ADNIMERGE's M")
        if months.isna().any():
            n = int(months.isna().sum())
            note = (f"{counted(n, 'visit row')} with no {c.months_column} {form(n, 'is', 'are')} left out "
                    f"({form(n, 'it', 'they')} cannot be placed in time)")
            self.report.notes.append(note)
            log.info("%s: %s", self._table_path, note)
        return months

    def _repeated_visits(self, table: pd.DataFrame) -> pd.DataFrame:
        """One row per (subject, visit): identical repeats counted once, conflicting ones refused."""
        c = self.cfg
        key = [c.subject_column, c.months_column]
        repeated = (table.duplicated(subset=key, keep=False) & table[c.months_column].notna()).to_numpy()
        if not repeated.any():
            return table
        cols = list(dict.fromkeys([c.diagnosis_column, *c.clinical_columns, *([c.label_column] if c.label_column else [])]))
        rows = table.loc[repeated, key + cols].copy()
        rows[cols] = rows[cols].astype(str).apply(lambda s: s.str.strip().str.lower())
        counts = rows.groupby(key, sort=True)[cols].nunique(dropna=False)
        bad = counts[(counts > 1).any(axis=1)]
        if not bad.empty:
            shown = [f"{subj} (month {_num(m)})" for subj, m in bad.index[:5]]
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            cols_bad = [col for col in cols if (bad[col] > 1).any()]
            n = len(bad)
            raise DataError(f"{self._table_path}: {form(n, 'subject')} {', '.join(shown)}{more} "
                            f"{form(n, 'has', 'have')} several rows for the same "
                            f"visit with different values in {cols_bad}; robustmm does not guess which row is right "
                            f"(the label could flip). Keep one row per subject and visit ({c.subject_column}, "
                            f"{c.months_column})")
        before = len(table)
        table = table[~(table.duplicated(subset=key, keep="first") & table[c.months_column].notna())]
        note = f"{counted(before - len(table), 'repeated identical visit row')} counted once"
        self.report.notes.append(note)
        log.info("%s: %s", self._table_path, note)
        return table

    def _derive_labels(self, table: pd.DataFrame):
        c = self.cfg
        subjects, labels, times, events, base_rows = [], [], [], [], []
        self.report.subjects_in_table = table[c.subject_column].nunique()
        diagnoses = self._diagnoses(table)
        for subject, visits in table.groupby(c.subject_column, sort=True):
            visits = visits.dropna(subset=[c.months_column]).sort_values(c.months_column)
            if visits.empty:
                self.report.exclude("no visit with months since baseline", subject)
                continue
            base = visits.iloc[0]
            dx = diagnoses.loc[visits.index]
            months = visits[c.months_column].to_numpy(dtype=float)
            conv = np.flatnonzero((dx == "dementia").to_numpy())
            event_time = months[conv[0]] if conv.size else None
            if c.label_column:
                label = _parse_label(base[c.label_column], subject, c.label_column, self._table_path)
                if label is None:
                    self.report.exclude(f"empty {c.label_column}", subject)
                    continue
            else:
                if months[0] != 0:  # the horizon counts from month 0: a later first visit is not the baseline
                    self.report.exclude(f"no baseline visit ({c.months_column} = 0)", subject)
                    continue
                if dx.iloc[0] == "":
                    self.report.exclude("no diagnosis at baseline", subject)
                    continue
                if dx.iloc[0] != "mci":
                    self.report.exclude("not MCI at baseline", subject)
                    continue
                if event_time is not None and event_time <= c.horizon_months:
                    label = 1
                elif months.max() >= c.horizon_months:
                    label = 0
                else:
                    self.report.exclude("followed less than the horizon without converting", subject)
                    continue
            subjects.append(subject)
            labels.append(label)
            times.append(event_time if event_time is not None else months.max())
            events.append(1.0 if event_time is not None else 0.0)
            base_rows.append(base)
        baseline = pd.DataFrame(base_rows).set_index(c.subject_column, drop=False) if base_rows else pd.DataFrame()
        return subjects, labels, times, events, baseline

    def _diagnoses(self, table: pd.DataFrame) -> pd.Series:
        """Each row's diagnosis as 'dementia', 'mci', 'normal' or '' (empty). A code outside the known
        ones is refused: counted as 'no dementia' it would make a converter stable."""
        col = self.cfg.diagnosis_column
        raw = table[col].astype(str).str.strip()
        text = raw.str.lower().str.replace(r"^.*\bto\s+", "", regex=True).where(table[col].notna(), "")
        groups = {**{v: "dementia" for v in DEMENTIA}, **{v: "mci" for v in MCI}, **{v: "normal" for v in NORMAL}}
        out = text.map(groups).where(text != "", "")
        unknown = out.isna()
        if unknown.any():
            values = list(dict.fromkeys(raw[unknown]))
            subjects = list(dict.fromkeys(table.loc[unknown, self.cfg.subject_column]))
            raise DataError(f"{self._table_path}: column '{col}' has value {values[0]!r} (subject {subjects[0]}; "
                            f"{counted(int(unknown.sum()), 'row')}, values {values[:5]}) that is no diagnosis robustmm "
                            "knows. "
                            "Use CN, MCI, Dementia (ADNIMERGE DX), EMCI, LMCI, SMC, AD (DX_bl), NL or an older "
                            "transition such as 'MCI to Dementia', or set data.diagnosis_column to such a column")
        return out

    # ------------------------------------------------------------------ images
    def _locate_images(self, subjects: list[str], table_subjects: set[str]
                       ) -> tuple[dict[str, Path], dict[str, Path | None]]:
        c = self.cfg
        mri: dict[str, Path] = {}
        pet: dict[str, Path | None] = {}
        if c.manifest:
            path = self.root / c.manifest
            try:
                # cells and names stripped: a space after a comma would make a path that does not exist
                man = pd.read_csv(path, dtype=str, keep_default_na=False).apply(lambda col: col.str.strip())
                man.columns = man.columns.str.strip()
            except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
                raise DataError(f"manifest {path} cannot be read ({exc}); it needs a header row "
                                f"{c.subject_column},mri_path,pet_path and one row per subject") from None
            for col in (c.subject_column, "mri_path"):
                if col not in man.columns:
                    raise DataError(f"{path}: missing column '{col}' (expected {c.subject_column}, mri_path, pet_path)")
            dupes = man[c.subject_column][man[c.subject_column].duplicated()].unique().tolist()
            if dupes:
                more = f" (and {len(dupes) - 5} more)" if len(dupes) > 5 else ""
                raise DataError(f"{path}: {form(len(dupes), 'subject')} {', '.join(dupes[:5])}{more} "
                                f"{form(len(dupes), 'is', 'are')} listed more than once; each "
                                "subject needs exactly one row (otherwise another row's images could be used)")
            rows = {r[c.subject_column]: r for r in man.to_dict("records")}
            for s, r in rows.items():
                if not r["mri_path"]:
                    raise DataError(f"{path}: subject {s} has an empty mri_path; every subject needs a T1 MRI")
                mri[s] = manifest_path(self.root, r["mri_path"])
                pet[s] = manifest_path(self.root, r["pet_path"]) if r.get("pet_path") else None
            source = path
        else:
            if not c.mri_pattern:
                raise DataError("give data.manifest or data.mri_pattern (e.g. 'images/{subject}/{subject}_T1.nii.gz')")
            for s in subjects:
                p = self.root / c.mri_pattern.format(subject=s)
                if p.is_file():
                    mri[s] = p
                if c.pet_pattern:
                    q = self.root / c.pet_pattern.format(subject=s)
                    pet[s] = q if q.is_file() else None
            source = self.root / c.mri_pattern
        in_images_only = sorted(set(mri) - table_subjects)
        in_table_only = sorted(set(subjects) - set(mri))
        for s in in_images_only:
            self.report.exclude("has images but is not in the table", s)
        for s in in_table_only:
            self.report.exclude("in the table but has no MRI", s)
        if (in_images_only or in_table_only) and c.unmatched_subjects == "error":
            raise DataError(f"{source}: subjects do not match {self._table_path}: "
                            f"{len(in_table_only)} in the table without MRI (e.g. {in_table_only[:3]}), "
                            f"{len(in_images_only)} with images but not in the table (e.g. {in_images_only[:3]}). "
                            "Fix the files, or set data.unmatched_subjects: skip")
        for s in subjects:
            if s in mri and not mri[s].is_file():
                raise DataError(f"subject {s}: MRI file {mri[s]} listed in {source} does not exist")
            if pet.get(s) is not None and not pet[s].is_file():
                raise DataError(f"subject {s}: PET file {pet[s]} listed in {source} does not exist "
                                "(leave pet_path empty for subjects without PET)")
        return {s: mri[s] for s in subjects if s in mri}, {s: pet.get(s) for s in subjects if s in mri}

    def _load_volumes(self, mri_paths: list[Path], pet_paths: list[Path | None], progress: bool):
        """(mri (n, 1, D, H, W), pet (n_with_pet, 1, D, H, W), pet row per subject or -1): volumes
        preprocessed in parallel on first use, cached on disk and memory-mapped from the cache."""
        shape = tuple(self.cfg.volume_shape)
        files = mri_paths + [p for p in pet_paths if p is not None]
        cache = self.root / ".robustmm_cache" / f"volumes_{cache_key(files, shape)}.pt"
        with_pet = [i for i, p in enumerate(pet_paths) if p is not None]
        whats = [f"subject {s} (MRI)" for s in self.subjects] + [f"subject {self.subjects[i]} (PET)" for i in with_pet]
        if self.cfg.cache:
            for path in remove_abandoned_tmp(cache.parent):  # e.g. a run killed while writing its cache
                log.info("removed %s, left by a volume cache write that was stopped", path)
        if self.cfg.cache and cache.is_file():
            try:
                stored = load_torch(cache, "volume cache", mmap=True)
                self._note_nonfinite(whats, stored["nonfinite"].tolist())
                return stored["mri"], stored["pet"], stored["pet_row"]
            except (DataError, KeyError, TypeError) as exc:  # a damaged cache is rebuilt, never trusted
                log.warning("%s; rebuilding it", exc)
        volumes, nonfinite = load_volumes(mri_paths + [pet_paths[i] for i in with_pet], shape, whats,
                                          self.cfg.preprocess_workers, progress)
        self._note_nonfinite(whats, nonfinite)
        n = len(mri_paths)
        mri, pet = volumes[:n].clone(), volumes[n:].clone()  # clone: out of shared memory, own storages
        pet_row = torch.full((n,), -1, dtype=torch.int64)
        pet_row[torch.as_tensor(with_pet, dtype=torch.int64)] = torch.arange(len(with_pet))
        if self.cfg.cache:
            try:  # other runs may write the same cache at once (sweep workers): save_torch_shared
                save_torch_shared({"mri": mri, "pet": pet, "pet_row": pet_row,
                                   "nonfinite": torch.as_tensor(nonfinite, dtype=torch.int64)}, cache)
            except (OSError, RuntimeError) as exc:  # a read-only copy of the data, a full disk (torch.save raises
                # RuntimeError): the run does not need the cache, and the temporary file is gone
                why = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("could not write the volume cache %s (%s); the volumes are preprocessed again on every "
                            "run (set data.cache: false to skip the cache)", cache, why)
        return mri, pet, pet_row

    def _note_nonfinite(self, whats: list[str], nonfinite: list[int]) -> None:
        """A data-report note on the volumes whose NaN or infinite voxels were set to 0: expected outside a
        PET field of view, a damaged export anywhere else."""
        bad = [(what, n) for what, n in zip(whats, nonfinite) if n]
        if not bad:
            return
        shown = ", ".join(f"{what}: {n}" for what, n in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        note = (f"{counted(len(bad), 'volume')} had NaN or infinite voxels, set to 0 before scaling ({shown}); "
                "expected outside a PET field of view, otherwise check those files")
        self.report.notes.append(note)
        log.info("%s: %s", self.root, note)

    def _pet(self, i: int) -> torch.Tensor:
        row = int(self.pet_row[i])
        if row < 0:  # absent: zeros of the right shape, never read (present=False)
            return torch.zeros((1, *self.cfg.volume_shape), dtype=torch.float32)
        return self.pet[row]

    # ------------------------------------------------------------------ clinical
    def _clinical_matrix(self, baseline: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        names, cols = [], []
        for col in self.cfg.clinical_columns:
            values = baseline[col]
            if col.upper() in ("PTGENDER", "SEX", "GENDER"):
                mapped = values.astype(str).str.strip().str.lower().map(
                    {"female": 1.0, "f": 1.0, "male": 0.0, "m": 0.0, "nan": np.nan})
                bad = values[mapped.isna() & values.notna()]
                name = "is_female"
            else:
                mapped = pd.to_numeric(values, errors="coerce")
                bad = values[mapped.isna() & values.notna() & (values.astype(str).str.strip() != "")]
                name = col
            if len(bad):
                subject, value = bad.index[0], bad.iloc[0]
                raise DataError(f"{self._table_path}: column '{col}' has non-numeric value {value!r} for subject "
                                f"{subject} ({len(bad)} such cells). Clean the column or drop it from "
                                "data.clinical_columns")
            inf = np.isinf(mapped.to_numpy(dtype=np.float64))
            if inf.any():
                subjects = [str(x) for x in baseline.index[inf][:5]]
                raise DataError(f"{self._table_path}: column '{col}' is infinite for {form(len(subjects), 'subject')} "
                                f"{subjects}; replace inf by a finite value or leave the cell empty (then it is "
                                "imputed or refused "
                                "by data.nan_policy)")
            names.append(name)
            cols.append(mapped.to_numpy(dtype=np.float32))
        matrix = np.stack(cols, axis=1) if cols else np.zeros((len(baseline), 0), np.float32)
        return names, matrix

    def fit(self, train_indices: list[int] | np.ndarray) -> None:
        """Fit clinical standardization (and NaN imputation) on the training subjects only."""
        train = self._clin_raw[np.asarray(train_indices)]
        nan_cols = [self.clinical_names[j] for j in range(train.shape[1]) if self._clin_nan[:, j].any()]
        if nan_cols and self.cfg.nan_policy == "error":
            j = self.clinical_names.index(nan_cols[0])
            subject = self.subjects[int(np.flatnonzero(self._clin_nan[:, j])[0])]
            raise DataError(f"{self._table_path}: NaN in clinical {form(len(nan_cols), 'column')} {nan_cols} "
                            f"(e.g. '{nan_cols[0]}' of subject {subject}); set data.nan_policy: impute to fill with "
                            "training means")
        # a column empty for every training subject warns here; it is refused just below
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.where(np.isfinite(train), train, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(train), train, np.nan), axis=0)
        all_nan = [self.clinical_names[j] for j in range(len(mean)) if not np.isfinite(mean[j])]
        if all_nan:
            raise DataError(f"{self._table_path}: clinical {form(len(all_nan), 'column')} {all_nan} "
                            f"{form(len(all_nan), 'is', 'are')} empty for every training subject; drop "
                            f"{form(len(all_nan), 'it', 'them')} from data.clinical_columns")
        self._clin_mean = mean.astype(np.float32)
        self._clin_std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        self.report.imputed = {self.clinical_names[j]: int(self._clin_nan[:, j].sum())
                               for j in range(len(mean)) if self._clin_nan[:, j].any()}
        self.fitted = True

    def clinical(self, i: int) -> torch.Tensor:
        x = (np.where(self._clin_nan[i], self._clin_mean, self._clin_raw[i]) - self._clin_mean) / self._clin_std
        return torch.from_numpy(x.astype(np.float32))

    # ------------------------------------------------------------------ dataset protocol
    def __len__(self) -> int:
        return len(self.subjects)

    def __getitem__(self, i: int) -> dict:
        if not self.fitted:
            raise RuntimeError("call AdniDataset.fit(train_indices) before reading samples")
        return {
            "inputs": {"mri": self.mri[i], "pet": self._pet(i), "clinical": self.clinical(i)},
            "present": {"mri": True, "pet": bool(self.has_pet[i]), "clinical": True},
            "valid": {"clinical": torch.from_numpy(~self._clin_nan[i])},
            "target": int(self.labels[i]),
            "meta": {"subject": self.subjects[i], "time": float(self.times[i]), "event": float(self.events[i])},
        }

    def subject_ids(self) -> list[str]:
        return list(self.subjects)

    def natural_presence(self) -> dict[str, np.ndarray]:
        n = len(self)
        return {"mri": np.ones(n, bool), "pet": self.has_pet.copy(), "clinical": np.ones(n, bool)}

    def stratify_labels(self) -> np.ndarray:
        return self.labels


def _num(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else str(value)


def _parse_label(value, subject: str, column: str, path: Path) -> int | None:
    if pd.isna(value) or str(value).strip() == "":
        return None
    text = str(value).strip().lower()
    if text.endswith(".0"):
        text = text[:-2]
    if text in PMCI_NAMES:
        return 1
    if text in SMCI_NAMES:
        return 0
    raise DataError(f"{path}: label column '{column}' has value {value!r} for subject {subject}; "
                    "use 1/0 or pMCI/sMCI")

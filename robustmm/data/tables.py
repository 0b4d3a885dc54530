"""Generic multimodal tables: one CSV/TSV/parquet file (or a zipped CSV), modalities = column groups.

A :class:`TableDataset` turns a flat table into samples that follow the contract of
:mod:`robustmm.data.batch`. Each modality is a group of columns picked by a
:class:`ColumnSelector`; the target is one column (classification, regression) or a
(time, event) pair (survival).

Statistics that depend on the data (imputation means, standardization mean/std) are never
computed on the whole table: the caller passes the training indices to :meth:`fit_imputer`
and :meth:`fit_scaler`, so validation and test rows never leak into preprocessing.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from pydantic import ConfigDict, Field, ValidationError, model_validator

from robustmm.config.loader import format_validation_error
from robustmm.config.schema import ConfigModel
from robustmm.data.base import DataReport, MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.errors import ConfigError, DataError
from robustmm.text import counted, form

NanPolicy = Literal["impute", "error"]
Standardize = Literal["continuous", "all", "none"]

_MAX_IDS = 5  # subject ids quoted in an error message


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (messages show 2, not np.int64(2))."""
    return value.item() if isinstance(value, np.generic) else value


def _named(noun: str, values: Sequence[Any]) -> str:
    """``noun`` in the form that goes with the number of ``values``, then the values: "patient P1",
    "patients P1, P2"."""
    return f"{form(len(values), noun)} {_ids(values)}"


def _ids(values: Iterable[Any], limit: int = _MAX_IDS) -> str:
    values = [str(_plain(v)) for v in values]
    more = f" (and {len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


# ----------------------------------------------------------------------------------------------
# reading files


#: zip archives read inside a table's zip (published TCGA tables name their CSV member *.csv.zip);
#: a deeper nesting is refused, not recursed into
_MAX_ZIP_NESTING = 1
#: the most bytes a zip member or a .gz/.bz2/.xz table may hold uncompressed, as a zip header
#: declares and as actually read (a decompression bomb would otherwise fill the memory); the
#: PORPOISE TCGA tables hold under 20 MB
MAX_ZIP_MEMBER_BYTES = 4 * 2**30
#: decompressed bytes per read: decompressors produce up to the amount asked for in one go, so a
#: single whole-file read of a lying header could allocate gigabytes before noticing
_ZIP_CHUNK = 2**20
#: single-file compressions pandas would otherwise decompress without a limit
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _too_large(problem: str, source: str, remedy: str) -> DataError:
    return DataError(f"{problem}; robustmm decompresses at most {MAX_ZIP_MEMBER_BYTES} bytes from {source}, so that "
                     f"a decompression bomb cannot fill the memory. If you trust the file, {remedy} and pass the "
                     "plain table, which is read without this limit")


def _bounded_read(stream: Any, too_large: Any) -> io.BytesIO:
    """All of ``stream`` in memory, ``too_large(what)`` raised past MAX_ZIP_MEMBER_BYTES."""
    data = io.BytesIO()
    while chunk := stream.read(_ZIP_CHUNK):
        data.write(chunk)
        if data.tell() > MAX_ZIP_MEMBER_BYTES:
            raise too_large(f"decompresses to more than {MAX_ZIP_MEMBER_BYTES} bytes")
    data.seek(0)
    return data


def _read_csv_bytes(data: io.BytesIO, name: str, sep: str | None, nesting: int) -> pd.DataFrame:
    """Parse CSV text; a member that is itself a zip archive is opened, ``nesting`` zips deep."""
    magic = data.read(4)
    data.seek(0)
    if magic == b"PK\x03\x04":
        if nesting >= _MAX_ZIP_NESTING:
            raise DataError(f"{name}: a zip archive nested in a zip nested in a zip; robustmm reads a table's zip "
                            "and one zip inside it, no deeper: unzip the layers and pass the CSV file")
        return _read_zip(zipfile.ZipFile(data), name, nesting + 1)
    try:
        return _read_csv_checked(data, sep if sep else ",", name)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{name}: cannot parse the table ({exc}); check that it is plain CSV text") from exc


def _read_member(archive: zipfile.ZipFile, member: str, name: str) -> io.BytesIO:
    """``member`` of ``archive`` decompressed into memory, refused beyond MAX_ZIP_MEMBER_BYTES."""
    def too_large(what: str) -> DataError:
        return _too_large(f"{name}: member {member} {what}", "a zip member", "extract it yourself (e.g. `unzip`)")

    declared = archive.getinfo(member).file_size
    if declared > MAX_ZIP_MEMBER_BYTES:
        raise too_large(f"declares {declared} bytes uncompressed")
    with archive.open(member) as stream:  # read with the cap too: the header may understate the size
        return _bounded_read(stream, lambda what: too_large(f"{what} (its header declares {declared})"))


def _refuse_repeated_columns(frame: pd.DataFrame, header: Any, name: str) -> None:
    """A name given twice in the header is an error: pandas renames the copy X.1, which a modality
    selector skips or keeps without notice. ``header`` reads the raw first row, only when a column
    name looks renamed (names that merely end in .1 exist, e.g. RP11-193H5.1_mut)."""
    if not any(re.search(r"\.\d+$", str(c)) for c in frame.columns):
        return
    names = [str(v) for v in header().iloc[0].tolist() if isinstance(v, str)]
    repeated = [n for n, k in pd.Series(names).value_counts(sort=False).items() if k > 1]
    if repeated:
        raise DataError(f"{name}: {_named('column', repeated)} "
                        f"{form(len(repeated), 'appears', 'appear')} more than once in the header; robustmm does "
                        "not guess which copy is right: keep one column per name (drop or merge the copies)")


def _read_csv_checked(source: Any, sep: str, name: str) -> pd.DataFrame:
    """``pd.read_csv`` of a path or an in-memory file, refusing a header that names a column twice."""
    frame = pd.read_csv(source, sep=sep, low_memory=False)

    def header() -> pd.DataFrame:
        if hasattr(source, "seek"):
            source.seek(0)
        return pd.read_csv(source, sep=sep, header=None, nrows=1, dtype=str)

    _refuse_repeated_columns(frame, header, name)
    return frame


def _read_zip(archive: zipfile.ZipFile, name: str, nesting: int = 0) -> pd.DataFrame:
    """The one table of ``archive``, read in memory (members are never extracted to disk)."""
    members = [m for m in archive.namelist() if not m.endswith("/") and "__MACOSX" not in m]
    tables = [m for m in members if re.search(r"\.(csv|tsv|txt)(\.zip)?$", m, re.IGNORECASE)]
    candidates = tables or members
    if len(candidates) != 1:
        raise DataError(
            f"{name}: the zip archive must hold exactly one table, found {len(candidates)}: "
            f"{candidates[:5]}; unzip it and pass the table file instead"
        )
    member = candidates[0]
    sep = "\t" if re.search(r"\.tsv(\.zip)?$", member, re.IGNORECASE) else ","
    return _read_csv_bytes(_read_member(archive, member, name), f"{name}:{member}", sep, nesting)


def _read_compressed(path: Path, sep: str) -> pd.DataFrame:
    def too_large(what: str) -> DataError:
        return _too_large(f"{path}: {what}", "a compressed table", "decompress it yourself")

    with _COMPRESSED[path.suffix.lower()](path, "rb") as stream:
        return _read_csv_checked(_bounded_read(stream, too_large), sep, str(path))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV (.tsv/.txt), parquet, gzip-compressed or zipped table into a DataFrame.

    A ``.zip`` must contain one table; its member may itself be named ``*.csv.zip`` and be
    either plain CSV text or another zip archive (both occur in published TCGA tables), which
    must then hold the CSV text (a third zip is refused).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: table file not found; check the path (relative paths are resolved "
                        f"from {Path.cwd()})")
    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            try:
                with zipfile.ZipFile(path) as archive:
                    return _read_zip(archive, str(path))
            except zipfile.BadZipFile as exc:
                raise DataError(f"{path}: not a valid zip archive ({exc}); download it again") from exc
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        sep = "\t" if re.search(r"\.(tsv|txt)(\.gz|\.bz2|\.xz)?$", name) else ","
        if path.suffix.lower() in _COMPRESSED:
            return _read_compressed(path, sep)
        return _read_csv_checked(path, sep, str(path))
    except DataError:
        raise
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: cannot read the table ({exc}); check the file format") from exc


# ----------------------------------------------------------------------------------------------
# column selection and targets


@dataclass(frozen=True)
class ColumnSelector:
    """Picks the columns of one modality: exactly one of ``suffix``, ``prefix``, ``regex``
    (``re.search``) or an explicit ``columns`` list."""

    suffix: str | None = None
    prefix: str | None = None
    regex: str | None = None
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("suffix", "prefix", "regex", "columns") if getattr(self, k) is not None]
        if len(given) != 1:
            raise DataError(
                f"column selector {self!r}: give exactly one of suffix, prefix, regex or columns "
                f"(got {given or 'none'})"
            )
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(str(c) for c in self.columns))
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise DataError(f"column selector regex {self.regex!r} is invalid: {exc}") from exc

    @classmethod
    def coerce(cls, spec: "ColumnSelector | Mapping[str, Any] | Sequence[str]") -> "ColumnSelector":
        """Build from a selector, a dict such as ``{"suffix": "_rnaseq"}`` or a list of columns."""
        if isinstance(spec, ColumnSelector):
            return spec
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"suffix", "prefix", "regex", "columns"}
            if unknown:
                raise DataError(f"column selector {dict(spec)}: unknown {_named('key', sorted(unknown))}; "
                                f"use one of suffix, prefix, regex, columns")
            return cls(**spec)
        if isinstance(spec, (list, tuple)):
            return cls(columns=tuple(spec))
        raise DataError(f"column selector {spec!r}: expected a dict like {{'suffix': '_rnaseq'}} or a list of columns")

    def select(self, columns: Sequence[str]) -> list[str]:
        """Matching columns, in table order (explicit lists keep their own order)."""
        if self.columns is not None:
            return list(self.columns)
        if self.suffix is not None:
            return [c for c in columns if c.endswith(self.suffix)]
        if self.prefix is not None:
            return [c for c in columns if c.startswith(self.prefix)]
        pattern = re.compile(self.regex or "")
        return [c for c in columns if pattern.search(c)]


@dataclass(frozen=True)
class TargetSpec:
    """What to predict. ``kind`` binary/multiclass/regression use ``column``; survival uses
    ``time`` plus either ``event`` (1 = death) or ``censorship`` (1 = censored)."""

    kind: str
    column: str | None = None
    time: str | None = None
    event: str | None = None
    censorship: str | None = None
    classes: tuple[Any, ...] | None = None  # class order (binary: [negative, positive]); default sorted values

    @classmethod
    def coerce(cls, spec: "TargetSpec | Mapping[str, Any]") -> "TargetSpec":
        if isinstance(spec, TargetSpec):
            out = spec
        elif isinstance(spec, Mapping):
            unknown = set(spec) - {"kind", "column", "time", "event", "censorship", "classes"}
            if unknown:
                raise DataError(f"target {dict(spec)}: unknown {form(len(unknown), 'key')} {sorted(unknown)}; use "
                                "kind, column, time, event, censorship or classes")
            if "kind" not in spec:
                raise DataError(f"target {dict(spec)}: missing 'kind' (binary, multiclass, regression, survival)")
            out = cls(**{**spec, "classes": tuple(spec["classes"]) if spec.get("classes") is not None else None})
        else:
            raise DataError(f"target {spec!r}: expected a dict such as {{'kind': 'binary', 'column': 'label'}}")
        out._validate()
        return out

    def _validate(self) -> None:
        if self.kind in ("binary", "multiclass", "regression"):
            if not self.column:
                raise DataError(f"target of kind {self.kind!r} needs 'column'")
        elif self.kind == "survival":
            if not self.time:
                raise DataError("survival target needs 'time' (the follow-up time column)")
            if (self.event is None) == (self.censorship is None):
                raise DataError("survival target needs exactly one of 'event' (1 = death) or "
                                "'censorship' (1 = censored)")
        else:
            raise DataError(f"target kind {self.kind!r} is not one of binary, multiclass, regression, survival")

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.column, self.time, self.event, self.censorship) if c]


# ----------------------------------------------------------------------------------------------
# survival helpers


def validate_survival(times: Sequence[Any], events: Sequence[Any], ids: Sequence[Any], source: str,
                      time_column: str = "time", event_column: str = "event") -> tuple[np.ndarray, np.ndarray]:
    """Check and convert survival columns: numeric non-negative times, 0/1 events, at least one event.

    ``events`` must already be event indicators (1 = death). Returns float64 arrays.
    """
    ids = np.asarray([str(i) for i in ids])
    if len(ids) == 0:
        raise DataError(f"{source}: the table has no rows (only a header?); add one row per patient")
    t = pd.to_numeric(pd.Series(list(times)), errors="coerce").to_numpy(dtype=float)
    raw_t = pd.Series(list(times))
    bad = raw_t.notna().to_numpy() & np.isnan(t)
    if bad.any():
        raise DataError(f"{source}: column {time_column!r} has non-numeric value {_plain(raw_t[bad].iloc[0])!r} for "
                        f"{_named('patient', ids[bad])}; survival times must be numbers")
    if np.isnan(t).any():
        bad = np.isnan(t)
        raise DataError(f"{source}: column {time_column!r} is missing (NaN) for {_named('patient', ids[bad])}; "
                        f"fill in the follow-up time or remove {form(int(bad.sum()), 'the patient', 'these patients')}")
    if np.isinf(t).any():
        bad = np.isinf(t)
        raise DataError(f"{source}: column {time_column!r} is infinite for {_named('patient', ids[bad])}; "
                        f"survival times must be finite numbers")
    if (t < 0).any():
        bad = t < 0
        raise DataError(f"{source}: column {time_column!r} is negative for {_named('patient', ids[bad])}; "
                        f"survival times must be >= 0 (check the unit and the sign)")
    e = pd.to_numeric(pd.Series(list(events)), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(e, (0.0, 1.0))
    if bad.any():
        raise DataError(f"{source}: column {event_column!r} must be 0 or 1, got "
                        f"{_plain(pd.Series(list(events))[bad].iloc[0])!r} for {_named('patient', ids[bad])}")
    if e.sum() == 0:
        everyone = "the one patient is" if len(e) == 1 else f"all {len(e)} patients are"
        raise DataError(f"{source}: {everyone} censored (no death in column {event_column!r}); "
                        f"survival models and the C-index need at least one event — check the "
                        f"event/censorship coding (event: 1 = death; censorship: 1 = censored)")
    return t, e


def censored_at_zero_notes(times: np.ndarray, events: np.ndarray, ids: Sequence[Any], source: str,
                           time_column: str) -> list[str]:
    """A data-report note on patients censored at time 0, when there are any: they add nothing to the
    survival likelihood, and such a row is often a data-entry error."""
    zero = (np.asarray(times) == 0) & (np.asarray(events) == 0)
    if not zero.any():
        return []
    n = int(zero.sum())
    return [f"{source}: {counted(n, 'patient')} censored at {time_column} 0 ({_ids(np.asarray(ids)[zero])}); "
            f"{form(n, 'such a row adds', 'such rows add')} nothing to the survival likelihood and often "
            f"{form(n, 'means', 'mean')} a data-entry error: check {form(n, 'its', 'their')} follow-up time"]


def drop_identical_duplicates(frame: pd.DataFrame, id_column: str, source: str, allow: bool = True,
                              ignore: Sequence[str] = ()) -> pd.DataFrame:
    """One row per id. Repeated ids are an error naming them, except (``allow``) rows that repeat
    an id with the same values in every column but ``ignore``, which are kept once (first row)."""
    dup_mask = frame[id_column].duplicated(keep=False).to_numpy()
    if not dup_mask.any():
        return frame.reset_index(drop=True)
    dup_ids = list(dict.fromkeys(frame.loc[dup_mask, id_column].tolist()))
    if not allow:
        raise DataError(f"{source}: subject {_named('id', dup_ids)} "
                        f"{form(len(dup_ids), 'appears', 'appear')} in more than one row of column "
                        f"{id_column!r}; list each subject once (or set dedupe: true when the repeated rows are "
                        f"identical)")
    compare = [c for c in frame.columns if c != id_column and c not in set(ignore)]
    rows = frame.loc[dup_mask, [id_column, *compare]]
    counts = rows.astype(str).groupby(id_column, sort=False).nunique(dropna=False)
    differing = counts.gt(1)
    conflicts = differing.index[differing.any(axis=1)].tolist()
    if conflicts:
        cols = [c for c in compare if bool(differing[c].any())]
        raise DataError(f"{source}: subject {_named('id', conflicts)} "
                        f"{form(len(conflicts), 'appears', 'appear')} in several rows of column {id_column!r} with "
                        f"different values (in {_named('column', cols)}); robustmm does not guess which row is "
                        f"right: keep one row per subject")
    return frame.drop_duplicates(subset=id_column, keep="first").reset_index(drop=True)


def quartile_bins(times: Sequence[float], events: Sequence[float], n_bins: int = 4) -> np.ndarray:
    """Cut points for discrete-time survival: quantiles of the *uncensored* times.

    Returns ``n_bins + 1`` edges ``[-inf, q_1, ..., q_{n-1}, +inf]`` (the PORPOISE/DisPro
    convention, with open outer edges so any later time falls in a bin). Ties in the data can
    give equal edges, i.e. empty bins; the number of bins stays ``n_bins`` on purpose so the
    model's output size does not depend on the data.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    times = np.asarray(times, dtype=float)
    events = np.asarray(events, dtype=float)
    uncensored = times[events > 0.5]
    if uncensored.size == 0:
        raise DataError("cannot compute survival bins: no uncensored (death) times in the training data")
    inner = np.quantile(uncensored, np.arange(1, n_bins) / n_bins) if n_bins > 1 else np.array([])
    return np.concatenate([[-np.inf], inner, [np.inf]])


def assign_bins(times: Sequence[float], cuts: Sequence[float]) -> np.ndarray:
    """Bin index k with ``cuts[k] <= t < cuts[k+1]`` (int64, in 0..len(cuts)-2)."""
    cuts = np.asarray(cuts, dtype=float)
    idx = np.searchsorted(cuts, np.asarray(times, dtype=float), side="right") - 1
    return np.clip(idx, 0, len(cuts) - 2).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# training-set missingness (the train/test missing grid of docs/protocols/rmfm.md)


def parse_train_missing(spec: Mapping[str, float], modalities: Sequence[str],
                        source: str) -> list[tuple[tuple[str, ...], float]]:
    """``{"rnaseq": 0.4, "cnv+mut": 0.2}`` -> ``[(("rnaseq",), 0.4), (("cnv", "mut"), 0.2)]``.

    A key names one modality or several joined by ``+`` (dropped together). Groups must be
    disjoint, leave at least one modality, and their rates sum to at most 1 (no training case
    misses two groups).
    """
    groups: list[tuple[tuple[str, ...], float]] = []
    seen: set[str] = set()
    for key, rate in spec.items():
        mods = tuple(m.strip() for m in str(key).split("+") if m.strip())
        unknown = [m for m in mods if m not in modalities]
        if not mods or unknown:
            raise DataError(f"{source}: train_missing key {key!r} names unknown modality {unknown or key!r}; "
                            f"the modalities are {list(modalities)} (join several with '+')")
        if seen & set(mods):
            raise DataError(f"{source}: train_missing groups overlap on {sorted(seen & set(mods))}; each modality "
                            f"may appear in one group only")
        if set(mods) >= set(modalities):
            raise DataError(f"{source}: train_missing group {key!r} covers every modality; a case must keep at "
                            f"least one")
        if not 0.0 <= float(rate) <= 1.0:
            raise DataError(f"{source}: train_missing rate for {key!r} must be in [0, 1], got {rate}")
        seen |= set(mods)
        groups.append((mods, float(rate)))
    total = sum(r for _, r in groups)
    if total > 1.0 + 1e-9:
        raise DataError(f"{source}: train_missing rates sum to {total:g} > 1; no case misses two groups, so the "
                        f"rates must sum to at most 1")
    return groups


def _unit_hash(*keys: Any) -> float:
    """A number in [0, 1) that depends only on ``keys`` (stable across runs and machines)."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def training_missingness(subjects: Sequence[str], presence: Mapping[str, np.ndarray],
                         train_indices: Sequence[int] | np.ndarray,
                         groups: Sequence[tuple[tuple[str, ...], float]],
                         seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Remove modality groups from a fraction of the *training* subjects.

    Training subjects are ordered by a stable hash of (seed, subject id); the first
    ``round(rate * n_train_subjects)`` eligible subjects lose the first group, the next ones the
    second group, and so on, so no subject loses two groups and a larger rate keeps the smaller
    rate's subjects (nested sets). A subject is eligible when it has some modality of the group
    and some modality outside it (nobody is left with nothing). Items outside ``train_indices``
    are untouched. Returns the new presence arrays and the number of subjects per group.
    """
    present = {m: np.asarray(p, dtype=bool).copy() for m, p in presence.items()}
    idx = np.asarray(train_indices, dtype=np.int64).reshape(-1)
    items: dict[str, list[int]] = {}
    for i in idx.tolist():
        items.setdefault(str(subjects[i]), []).append(i)
    order = sorted(items, key=lambda s: (_unit_hash("train_missing", seed, s), s))
    taken: set[str] = set()
    counts: dict[str, int] = {}
    for mods, rate in groups:
        want, got = int(round(rate * len(order))), 0
        others = [m for m in present if m not in mods]
        for subject in order:
            if got >= want:
                break
            rows = items[subject]
            if subject in taken or not all(any(present[m][i] for m in mods) and any(present[m][i] for m in others)
                                           for i in rows):
                continue
            for m in mods:
                present[m][rows] = False
            taken.add(subject)
            got += 1
        counts["+".join(mods)] = got
    return present, counts


# ----------------------------------------------------------------------------------------------
# the dataset


class TableDataset(MultimodalDataset):
    """Multimodal dataset over one flat table (one or more rows per subject).

    Parameters
    ----------
    source: path to a CSV/TSV/parquet/zipped CSV, or a DataFrame.
    id_column: subject id column.
    modalities: name -> :class:`ColumnSelector` (or a dict/list coercible to one).
    target: :class:`TargetSpec` or a dict (see its docstring).
    categorical: columns one-hot encoded (``"col=value"`` features, sorted by value); a NaN
        category gives NaN in every one-hot column of that row.
    dedupe: rows that repeat a subject id with exactly the same values are kept once; without
        ``dedupe`` any repeated id is an error. Rows that repeat an id with *different* values
        are always an error naming the ids and columns (never "the first row wins").
    missing_from_nan: a modality whose columns are all NaN in a row is naturally missing.
    nan_policy: remaining NaN cells of a present modality: ``"impute"`` (train mean, via
        :meth:`fit_imputer`) or ``"error"``.
    standardize: which columns :meth:`fit_scaler` standardizes: ``"continuous"`` (numeric, not
        0/1-valued, not one-hot), ``"all"`` numeric+one-hot, or ``"none"``.
    n_bins: number of discrete-time survival bins (``TaskSpec.num_classes`` for survival).
    clip: after standardization, clip values to ``[-clip, clip]`` (heavy-tailed omics z-scores
        otherwise give a few test values far outside anything seen in training); None = no clip.
    train_missing: training-set missingness, e.g. ``{"rnaseq": 0.4, "cnv+mut": 0.2}``: applied by
        :meth:`fit` to the training subjects only (see :func:`training_missingness`), so every
        method trains on the same incomplete training set while validation and test stay as
        they are. ``train_missing_seed`` picks which subjects.
    """

    def __init__(
        self,
        source: str | Path | pd.DataFrame,
        id_column: str,
        modalities: Mapping[str, ColumnSelector | Mapping[str, Any] | Sequence[str]],
        target: TargetSpec | Mapping[str, Any],
        *,
        categorical: Sequence[str] = (),
        dedupe: bool = True,
        missing_from_nan: bool = True,
        nan_policy: NanPolicy = "impute",
        standardize: Standardize = "continuous",
        n_bins: int = 4,
        source_name: str | None = None,
        train_missing: Mapping[str, float] | None = None,
        train_missing_seed: int = 0,
        clip: float | None = None,
    ) -> None:
        if isinstance(source, pd.DataFrame):
            frame = source.copy()
            self.source_name = source_name or "<DataFrame>"
            self.root = Path(".")
        else:
            self.root = Path(source)
            self.source_name = source_name or str(self.root)
            frame = read_table(self.root)
        if nan_policy not in ("impute", "error"):
            raise DataError(f"nan_policy {nan_policy!r} is not one of 'impute', 'error'")
        if standardize not in ("continuous", "all", "none"):
            raise DataError(f"standardize {standardize!r} is not one of 'continuous', 'all', 'none'")
        if not modalities:
            raise DataError(f"{self.source_name}: no modalities given; map each modality name to a column selector")
        self.id_column = id_column
        self.nan_policy = nan_policy
        self.standardize = standardize
        self.n_bins = n_bins
        if clip is not None and clip <= 0:
            raise DataError(f"clip must be > 0 (or None), got {clip}")
        self.clip = clip
        self.target_spec = TargetSpec.coerce(target)

        frame = self._check_ids(frame, dedupe)
        if len(frame) == 0:
            raise DataError(f"{self.source_name}: the table has no rows (only a header?); add one row per subject")
        self.frame = frame
        self._subjects = frame[id_column].tolist()
        n = len(frame)

        selectors = {name: ColumnSelector.coerce(sel) for name, sel in modalities.items()}
        self._build_modalities(frame, selectors, set(categorical), missing_from_nan)
        self._build_target(frame)

        # fitted state
        self.impute_means: dict[str, np.ndarray] | None = None
        self.scale_mean: dict[str, np.ndarray] | None = None
        self.scale_std: dict[str, np.ndarray] | None = None
        self.bin_cuts: np.ndarray | None = None
        assert all(len(v) == n for v in self._present.values())
        self._natural_present = {k: v.copy() for k, v in self._present.items()}
        self.train_missing = parse_train_missing(train_missing or {}, list(self.modalities), self.source_name)
        self.train_missing_seed = int(train_missing_seed)
        self.train_missing_counts: dict[str, int] = {}
        # what fit_imputer will fill (known before any split; fit recounts after train_missing)
        self.report = DataReport(subjects_in_table=n, subjects_used=n, imputed=self._holes())
        if self.target_spec.kind == "survival":
            self.report.notes += censored_at_zero_notes(self._time, self._event, self._subjects, self.source_name,
                                                        self.target_spec.time)
        self._imputer_notes: list[str] = []

    # -- construction helpers -------------------------------------------------------------------

    def _check_ids(self, frame: pd.DataFrame, dedupe: bool) -> pd.DataFrame:
        col = self.id_column
        if col not in frame.columns:
            raise DataError(f"{self.source_name}: id column {col!r} not found; available columns start with "
                            f"{list(frame.columns[:10])}")
        missing = frame[col].isna().to_numpy()
        if missing.any():
            rows = np.flatnonzero(missing)
            raise DataError(f"{self.source_name}: column {col!r} is empty in {_named('row', rows + 1)} "
                            f"(1-based, header excluded); every row needs a subject id")
        frame = frame.copy()
        frame[col] = frame[col].astype(str)
        return drop_identical_duplicates(frame, col, self.source_name, allow=dedupe)

    def _build_modalities(self, frame: pd.DataFrame, selectors: dict[str, ColumnSelector],
                          categorical: set[str], missing_from_nan: bool) -> None:
        reserved = {self.id_column, *self.target_spec.columns}
        for c in categorical:
            if c not in frame.columns:
                raise DataError(f"{self.source_name}: categorical column {c!r} not found in the table")
        self.modalities: dict[str, ModalitySpec] = {}
        self.columns: dict[str, list[str]] = {}          # source columns per modality
        self.feature_names: dict[str, list[str]] = {}    # after one-hot expansion
        self._raw: dict[str, np.ndarray] = {}
        self._present: dict[str, np.ndarray] = {}
        self._continuous: dict[str, np.ndarray] = {}
        owner: dict[str, str] = {}
        ids = np.asarray(self._subjects)
        for name, selector in selectors.items():
            if selector.columns is not None:
                absent = [c for c in selector.columns if c not in frame.columns]
                if absent:
                    raise DataError(f"{self.source_name}: modality {name!r} lists "
                                    f"{form(len(absent), 'column')} {absent[:10]} that "
                                    f"{form(len(absent), 'is', 'are')} not in the table; check spelling")
                leak = [c for c in selector.columns if c in reserved]
                if leak:
                    raise DataError(f"{self.source_name}: modality {name!r} lists {leak}, which is the id or "
                                    f"target column; remove it from the modality (it would leak the label)")
                cols = list(selector.columns)
            else:
                # pattern selectors silently skip id/target columns: a broad regex must never leak the label
                cols = [c for c in selector.select([str(c) for c in frame.columns]) if c not in reserved]
            if not cols:
                raise DataError(f"{self.source_name}: modality {name!r} selects no column with {selector}; "
                                f"check the selector against the table's columns (e.g. {list(frame.columns[:8])})")
            for c in cols:
                if c in owner:
                    raise DataError(f"{self.source_name}: column {c!r} is selected by both modality {owner[c]!r} "
                                    f"and {name!r}; make the selectors disjoint")
                owner[c] = name

            blocks: list[np.ndarray] = []
            names: list[str] = []
            continuous: list[bool] = []
            for c in cols:
                series = frame[c]
                if c in categorical:
                    values = series.astype("object").where(series.notna(), None)
                    cats = sorted({str(v) for v in values if v is not None})
                    block = np.full((len(frame), len(cats)), np.nan, dtype=np.float64)
                    known = values.notna().to_numpy()
                    as_str = values.map(lambda v: None if v is None else str(v)).to_numpy()
                    for j, cat in enumerate(cats):
                        block[known, j] = (as_str[known] == cat).astype(np.float64)
                    blocks.append(block)
                    names += [f"{c}={cat}" for cat in cats]
                    continuous += [self.standardize == "all"] * len(cats)
                    continue
                values = self._numeric(series, c, name, ids)
                blocks.append(values[:, None])
                names.append(c)
                finite = values[~np.isnan(values)]
                is_binary = finite.size > 0 and bool(np.isin(finite, (0.0, 1.0)).all())
                continuous.append(self.standardize == "all" or (self.standardize == "continuous" and not is_binary))
            raw = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
            nan = np.isnan(raw)
            present = ~nan.all(axis=1) if missing_from_nan else np.ones(len(frame), dtype=bool)
            if self.nan_policy == "error":
                holes = nan & present[:, None]
                if holes.any():
                    bad_cols = [names[j] for j in np.flatnonzero(holes.any(axis=0))]
                    bad_rows = ids[holes.any(axis=1)]
                    raise DataError(
                        f"{self.source_name}: modality {name!r} has missing values in "
                        f"{form(len(bad_cols), 'column')} {bad_cols[:10]}{' …' if len(bad_cols) > 10 else ''} for "
                        f"{_named('subject', bad_rows)}; fill them, or use "
                        f"nan_policy='impute' (train-set mean)"
                        + ("" if missing_from_nan else ", or missing_from_nan=True if whole rows are empty")
                    )
            self.columns[name] = cols
            self.feature_names[name] = names
            self._raw[name] = raw.astype(np.float32)
            self._present[name] = present
            self._continuous[name] = np.asarray(continuous, dtype=bool)
            self.modalities[name] = ModalitySpec(name=name, kind="table", shape=(raw.shape[1],))

    def _numeric(self, series: pd.Series, column: str, modality: str, ids: np.ndarray) -> np.ndarray:
        if series.dtype == bool:
            return series.to_numpy(dtype=np.float64)
        converted = pd.to_numeric(series, errors="coerce")
        bad = (series.notna() & converted.isna()).to_numpy()
        if bad.any():
            example = series[bad].iloc[0]
            raise DataError(
                f"{self.source_name}: column {column!r} (modality {modality!r}) has non-numeric value {example!r} "
                f"for subject {ids[bad][0]}; fix the value, or list the column in `categorical` to one-hot encode it"
            )
        values = converted.to_numpy(dtype=np.float64)
        inf = np.isinf(values)
        if inf.any():
            raise DataError(f"{self.source_name}: column {column!r} (modality {modality!r}) is infinite for "
                            f"{_named('subject', ids[inf])}; replace inf by a finite value or leave the cell empty")
        return values

    def _build_target(self, frame: pd.DataFrame) -> None:
        spec = self.target_spec
        ids = np.asarray(self._subjects)
        for c in spec.columns:
            if c not in frame.columns:
                raise DataError(f"{self.source_name}: target column {c!r} not found; available columns start "
                                f"with {list(frame.columns[:10])}")
        self.class_names: tuple[str, ...] = ()
        if spec.kind == "survival":
            event_col = spec.event or spec.censorship
            raw_events = frame[event_col]
            if spec.censorship is not None:
                # flip valid 0/1 codes only; anything else is kept so the error can quote it
                numeric = pd.to_numeric(raw_events, errors="coerce")
                raw_events = raw_events.astype(object).where(~numeric.isin([0, 1]), 1 - numeric)
            t, e = validate_survival(frame[spec.time].tolist(), raw_events.tolist(), ids, self.source_name,
                                     spec.time, event_col)
            self._time = t.astype(np.float32)
            self._event = e.astype(np.float32)
            self.task = TaskSpec(kind="survival", num_classes=self.n_bins)
            return
        col = frame[spec.column]
        missing = col.isna().to_numpy()
        if missing.any():
            raise DataError(f"{self.source_name}: target column {spec.column!r} is empty for "
                            f"{_named('subject', ids[missing])}; fill the label or drop "
                            f"{form(int(missing.sum()), 'the row', 'these rows')}")
        if spec.kind == "regression":
            values = pd.to_numeric(col, errors="coerce")
            bad = values.isna().to_numpy()
            if bad.any():
                raise DataError(f"{self.source_name}: regression target {spec.column!r} has non-numeric value "
                                f"{col[bad].iloc[0]!r} for {_named('subject', ids[bad])}")
            self._y = values.to_numpy(dtype=np.float32)
            self.task = TaskSpec(kind="regression", num_classes=1)
            return
        labels = col.tolist()
        classes = list(spec.classes) if spec.classes is not None else sorted(set(labels), key=lambda v: (str(type(v)), v))
        index = {c: i for i, c in enumerate(classes)}
        index.update({str(c): i for i, c in enumerate(classes)})
        unknown = [lab for lab in labels if lab not in index and str(lab) not in index]
        if unknown:
            bad = [i for i, lab in enumerate(labels) if lab not in index and str(lab) not in index]
            raise DataError(f"{self.source_name}: target {spec.column!r} has value {unknown[0]!r} "
                            f"({_named('subject', ids[bad])}) that is not one of the classes {classes}")
        if spec.kind == "binary" and len(classes) != 2:
            raise DataError(f"{self.source_name}: binary target {spec.column!r} has {len(classes)} classes "
                            f"{classes[:10]}; use kind 'multiclass' or recode the column to two values")
        if spec.kind == "binary" and spec.classes is None and pd.to_numeric(col, errors="coerce").isna().any():
            # the positive class (AUC, sensitivity, the score) would be the alphabetically later label
            raise DataError(f"{self.source_name}: binary target {spec.column!r} has text labels {classes}; say which "
                            f"is positive with classes: [negative, positive] in the target (study: "
                            f"data.options.target.classes: {[classes[0], classes[1]]} makes {classes[1]!r} positive)")
        self._y = np.asarray([index[lab] if lab in index else index[str(lab)] for lab in labels], dtype=np.int64)
        self.class_names = tuple(str(c) for c in classes)
        self.task = TaskSpec(kind=spec.kind, num_classes=len(classes), class_names=self.class_names)

    # -- fitting on the training split ------------------------------------------------------------

    def _train_index(self, train_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(train_indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("train_indices is empty")
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"train_indices out of range for a dataset of {len(self)} items")
        return idx

    def _train_columns(self, name: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Modality ``name`` on the training rows that have it (float64), its observed (non-NaN) cells,
        their count per column and the per-column mean of the observed cells (0 where none)."""
        train = self._raw[name][idx[self._present[name][idx]]].astype(np.float64)
        observed = ~np.isnan(train)
        counts = observed.sum(axis=0)
        sums = np.where(observed, train, 0.0).sum(axis=0)
        return train, observed, counts, np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)

    def _missing_cells(self, name: str) -> np.ndarray:
        """Per column of modality ``name``: NaN cells of subjects that have it (what the imputer fills)."""
        return (np.isnan(self._raw[name]) & self._present[name][:, None]).sum(axis=0)

    def _holes(self) -> dict[str, int]:
        """Feature -> NaN cells of subjects that have the modality."""
        out: dict[str, int] = {}
        for name in self._raw:
            per_col = self._missing_cells(name)
            out.update({self.feature_names[name][j]: int(per_col[j]) for j in np.flatnonzero(per_col)})
        return out

    def fit_imputer(self, train_indices: Sequence[int] | np.ndarray) -> dict[str, dict[str, Any]]:
        """Fill NaN cells of present modalities with the train-set column mean.

        Returns a summary per modality: ``n_cells`` (NaN cells filled over the whole dataset),
        ``columns`` ({feature: {"mean": train mean, "n_missing": cells}}), and
        ``no_train_values`` (columns with no observed train value, filled with 0). The filled
        cells per column, and a note on columns filled with 0, go to :attr:`report`.
        """
        idx = self._train_index(train_indices)
        self.impute_means = {}
        summary: dict[str, dict[str, Any]] = {}
        for name in self._raw:
            _, _, counts, means = self._train_columns(name, idx)
            self.impute_means[name] = means.astype(np.float32)
            per_col = self._missing_cells(name)
            cols = {self.feature_names[name][j]: {"mean": float(means[j]), "n_missing": int(per_col[j])}
                    for j in np.flatnonzero(per_col)}
            summary[name] = {
                "n_cells": int(per_col.sum()),
                "columns": cols,
                "no_train_values": [self.feature_names[name][j] for j in np.flatnonzero(counts == 0)],
            }
        self.report.imputed = {f: c["n_missing"] for s in summary.values() for f, c in s["columns"].items()}
        empty = [c for name, s in summary.items() for c in s["no_train_values"] if c in s["columns"]]
        # a refit (another split) replaces its own note, never one of the loader's
        self.report.notes = [n for n in self.report.notes if n not in self._imputer_notes]
        self._imputer_notes = [f"{_named('column', empty)} {form(len(empty), 'has', 'have')} no observed "
                               f"value in the training split; {form(len(empty), 'its', 'their')} missing cells are "
                               "filled with 0"] if empty else []
        self.report.notes += self._imputer_notes
        return summary

    def fit_scaler(self, train_indices: Sequence[int] | np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Train-set mean/std for the standardized columns (others get mean 0, std 1).

        A column that is constant on the training rows gets std 1 (it becomes 0 after centring).
        """
        idx = self._train_index(train_indices)
        self.scale_mean, self.scale_std = {}, {}
        for name in self._raw:
            train, observed, counts, mean = self._train_columns(name, idx)
            sq = np.where(observed, (train - mean) ** 2, 0.0).sum(axis=0)
            std = np.sqrt(np.divide(sq, counts - 1, out=np.zeros_like(sq), where=counts > 1))
            cont = self._continuous[name]
            mean = np.where(cont, mean, 0.0)
            std = np.where(cont & (std > 1e-12), std, 1.0)
            self.scale_mean[name] = mean.astype(np.float32)
            self.scale_std[name] = std.astype(np.float32)
        return {name: {"mean": self.scale_mean[name], "std": self.scale_std[name]} for name in self._raw}

    def fit_bins(self, train_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Survival only: quartile cut points from the training rows; afterwards targets carry ``bin``."""
        if self.task.kind != "survival":
            raise ValueError("fit_bins is only defined for survival targets")
        idx = self._train_index(train_indices)
        self.bin_cuts = quartile_bins(self._time[idx], self._event[idx], self.n_bins)
        return self.bin_cuts

    def apply_train_missing(self, train_indices: Sequence[int] | np.ndarray) -> dict[str, int]:
        """Start again from the natural presence and remove ``train_missing`` groups from the
        training subjects; returns the number of subjects per group."""
        idx = self._train_index(train_indices)
        self._present, self.train_missing_counts = training_missingness(
            self._subjects, self._natural_present, idx, self.train_missing, self.train_missing_seed)
        return dict(self.train_missing_counts)

    def fit(self, train_indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """:meth:`apply_train_missing` (when configured), then :meth:`fit_imputer`, :meth:`fit_scaler`
        and (survival) :meth:`fit_bins` on what the training subjects still have."""
        out: dict[str, Any] = {}
        if self.train_missing:
            out["train_missing"] = self.apply_train_missing(train_indices)
        out.update({"imputer": self.fit_imputer(train_indices), "scaler": self.fit_scaler(train_indices)})
        if self.task.kind == "survival":
            out["bin_cuts"] = self.fit_bins(train_indices)
        return out

    # -- dataset protocol -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subjects)

    def subject_ids(self) -> list[str]:
        return list(self._subjects)

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._present.items()}

    def stratify_labels(self) -> np.ndarray | None:
        if self.task.kind == "survival":
            return self._event.astype(np.int64)
        if self.task.kind in ("binary", "multiclass"):
            return self._y.copy()
        return None

    @property
    def times(self) -> np.ndarray:
        """Survival times (float32), survival targets only."""
        return self._time.copy()

    @property
    def events(self) -> np.ndarray:
        """Event indicators (1 = death), survival targets only."""
        return self._event.copy()

    def features(self, index: int, modality: str) -> tuple[np.ndarray, np.ndarray, bool]:
        """(values float32 (F,), valid bool (F,), present) of one row after imputation/scaling."""
        raw = self._raw[modality][index]
        present = bool(self._present[modality][index])
        valid = ~np.isnan(raw)
        if not present:
            return np.zeros_like(raw), valid, False
        x = raw.copy()
        if not valid.all():
            if self.impute_means is None:
                raise RuntimeError(
                    f"{self.source_name}: modality {modality!r} has missing cells (subject {self._subjects[index]}); "
                    f"call fit_imputer(train_indices) before reading samples"
                )
            x = np.where(valid, x, self.impute_means[modality])
        if self.scale_mean is not None:
            x = (x - self.scale_mean[modality]) / self.scale_std[modality]
        if self.clip is not None:
            x = np.clip(x, -self.clip, self.clip)
        return x.astype(np.float32), valid, True

    def target(self, index: int) -> Any:
        if self.task.kind == "survival":
            out = {"time": torch.tensor(float(self._time[index])), "event": torch.tensor(float(self._event[index]))}
            if self.bin_cuts is not None:
                out["bin"] = torch.tensor(int(assign_bins([self._time[index]], self.bin_cuts)[0]))
            return out
        if self.task.kind == "regression":
            return torch.tensor(float(self._y[index]))
        return torch.tensor(int(self._y[index]), dtype=torch.long)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        inputs, present, valid = {}, {}, {}
        for name in self.modalities:
            x, v, p = self.features(index, name)
            inputs[name] = torch.from_numpy(x)
            valid[name] = torch.from_numpy(v)
            present[name] = p
        return {
            "inputs": inputs,
            "present": present,
            "valid": valid,
            "target": self.target(index),
            "meta": {"subject": self._subjects[index]},
        }


# ----------------------------------------------------------------------------------------------
# study configuration (data.kind: table)


class _Options(ConfigModel):
    model_config = ConfigDict(extra="forbid")


class SelectorOptions(_Options):
    suffix: str | None = None
    prefix: str | None = None
    regex: str | None = None
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SelectorOptions":
        given = [k for k in ("suffix", "prefix", "regex", "columns") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of suffix, prefix, regex, columns (got {given or 'none'})")
        return self


class TargetOptions(_Options):
    kind: Literal["binary", "multiclass", "regression", "survival"]
    column: str | None = None
    time: str | None = None
    event: str | None = None
    censorship: str | None = None
    classes: list[Any] | None = None


class TableOptions(_Options):
    """``data.options`` of ``data.kind: table``."""

    file: str | None = None
    id_column: str
    modalities: dict[str, SelectorOptions] = Field(min_length=1)
    target: TargetOptions
    categorical: list[str] = Field(default_factory=list)
    dedupe: bool = True
    missing_from_nan: bool = True
    nan_policy: NanPolicy = "impute"
    standardize: Standardize = "continuous"
    n_bins: int = Field(4, ge=2)
    survival_head: Literal["discrete", "cox"] = "discrete"
    clip: float | None = Field(None, gt=0)
    train_missing: dict[str, float] = Field(default_factory=dict)
    train_missing_seed: int = 0


def validate_options(model: Any, options: Mapping[str, Any], source: str) -> Any:
    """``data.options`` validated against ``model``; errors name the key path (``data.options.…``)."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, source, prefix="data.options")) from None


def resolve_table_file(root: Path, file: str | None, kind: str) -> Path:
    """``data.root`` is the table itself, or a folder plus ``data.options.file``."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data.root {root} does not exist; point it at the table file (or at its folder and set "
                        f"data.options.file)")
    if root.is_file():
        if file is not None:
            raise DataError(f"data.root {root} is a file, so data.options.file ({file!r}) must not be set")
        return root
    if file is None:
        raise DataError(f"data.root {root} is a folder: set data.options.file to the table inside it "
                        f"(data.kind {kind!r})")
    path = root / file
    if not path.is_file():
        raise DataError(f"{path}: table file not found (data.root + data.options.file)")
    return path


def check_root(cfg: Any) -> None:
    """The table data.root names exists (robustmm.data.registry.check_data_root: before a run folder is made)."""
    opts = validate_options(TableOptions, cfg.options, f"data (kind {cfg.kind})")
    resolve_table_file(Path(cfg.root), opts.file, cfg.kind)


def survival_bins(n_bins: int, head: str) -> int:
    """Outputs of the survival head: ``n_bins`` hazards, or one Cox log-risk."""
    return 1 if head == "cox" else n_bins


def build_from_config(cfg: Any, progress: bool = True) -> TableDataset:
    """``data.kind: table``: a :class:`TableDataset` from ``data.root`` and ``data.options``
    (``id_column``, ``modalities`` name -> selector, ``target``, ``categorical``, ``dedupe``,
    ``missing_from_nan``, ``nan_policy``, ``standardize``, ``clip``, ``n_bins``, ``survival_head``,
    ``train_missing``, ``train_missing_seed``, ``file`` when ``root`` is a folder)."""
    if cfg.synthetic is not None:
        raise ConfigError("data.synthetic: kind 'table' has no synthetic generator; point data.root at a table "
                          "(or use kind 'tcga_porpoise' with data.synthetic for a generated survival table)")
    opts = validate_options(TableOptions, cfg.options, f"data (kind {cfg.kind})")
    path = resolve_table_file(Path(cfg.root), opts.file, cfg.kind)
    target = {k: v for k, v in opts.target.model_dump().items() if v is not None}
    n_bins = survival_bins(opts.n_bins, opts.survival_head) if opts.target.kind == "survival" else opts.n_bins
    return TableDataset(
        path,
        id_column=opts.id_column,
        modalities={name: {k: v for k, v in sel.model_dump().items() if v is not None}
                    for name, sel in opts.modalities.items()},
        target=target,
        categorical=opts.categorical,
        dedupe=opts.dedupe,
        missing_from_nan=opts.missing_from_nan,
        nan_policy=opts.nan_policy,
        standardize=opts.standardize,
        n_bins=n_bins,
        train_missing=opts.train_missing,
        train_missing_seed=opts.train_missing_seed,
        clip=opts.clip,
    )

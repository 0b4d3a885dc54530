"""CMU-MOSI / CMU-MOSEI feature pickles in the MMSA layout (``aligned_50.pkl`` /
``unaligned_50.pkl``), see ``docs/protocols/mmsa_format.md``.

One :class:`MMSADataset` holds the whole file; items are numbered train first, then val, then
test, and :meth:`MMSADataset.predefined_splits` returns the file's fixed splits (file key
``valid`` is exposed as ``val``). Modalities are ``text`` (BERT token ids or BERT features),
``audio`` and ``vision`` (sequences (T, F)).

Conventions:

- valid positions: text = attention mask ``text_bert[:, 1, :]`` (or, for feature input
  without ``text_bert``, the rows that are not all zero); audio/vision = the first
  ``*_lengths[i]`` frames in unaligned files; in aligned files without lengths, the text
  valid positions when the sequence has the text length, else every position.
- ``present[m]`` is False only when a sample has no valid position at all for ``m``.
- Non-finite audio/vision values (MOSI audio has -inf) are set to 0 when loading; the counts
  are logged, kept in :attr:`MMSADataset.nonfinite_counts` and noted in the data report.
- targets: ``regression`` = the label as a float32 scalar tensor; ``class3`` = 0 negative
  (y < 0), 1 neutral (y == 0), 2 positive (y > 0); ``class7`` = round(clip(y, -3, 3)) + 3 with
  numpy's round-half-to-even (as MMSA's metrics); ``binary`` = 0 negative (y < 0),
  1 non-negative (y >= 0), the "Has0" split, so no sample is dropped.
- task: ``regression``/``class3``/``class7`` give a :class:`SentimentTaskSpec` whose ``kind``
  is the generic one (``regression`` / ``multiclass``, so every network builds its usual head)
  and whose ``adapter`` names the task adapter with the MMSA/CIDer metrics
  (``robustmm.methods.task_emotion``); ``meta["regression_label"]`` carries the raw score
  those metrics need. ``binary`` is a plain binary task.
- text as features: the spec keeps ``special_ids`` = ([CLS], [SEP]), which tells the missing
  engine that the first and last real positions are those tokens (never dropped), and
  ``meta["token_ids"]`` carries each sample's BERT ids (when the file has ``text_bert``) so a
  method can locate words, e.g. CIDer's bias words. Caveat for missing-feature protocols: the
  kept [CLS]/[SEP] vectors of precomputed BERT features were computed from the whole sentence,
  so text given as features is never fully missing; token ids have no such leak.

Pickle files can run code when opened, so a pickle is never opened by default: its safe
``.npz`` conversion next to it (``robustmm data convert mmsa FILE.pkl``) is read instead, or,
for a file from a source the user trusts, ``data.options.trust_pickle: true`` opens it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robustmm.config.schema import ConfigModel
from robustmm.data.base import DataReport, MultimodalDataset, TaskSpec, synthetic_marker
from robustmm.data.batch import ModalitySpec
from robustmm.errors import ConfigError, DataError
from robustmm.names import check_relative
from robustmm.text import counted, form

log = logging.getLogger(__name__)

TextMode = Literal["ids", "features"]
TargetKind = Literal["regression", "class3", "class7", "binary"]

SPLITS = ("train", "val", "test")
# robustmm split name -> key in the file (older files may already say "val")
_FILE_SPLIT_KEYS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}
_LABEL_TOL = 1e-4  # float32 labels written as 3.0 may read back a hair above it

CLASS3_NAMES = ("negative", "neutral", "positive")
CLASS7_NAMES = ("-3", "-2", "-1", "0", "1", "2", "3")
BINARY_NAMES = ("negative", "non-negative")


@dataclass(frozen=True)
class SentimentTaskSpec(TaskSpec):
    """A generic task kind plus the name of the task adapter that scores it (MMSA metrics)."""

    adapter: str = ""


def sentiment_class3(y: np.ndarray) -> np.ndarray:
    """3-way class of regression labels: 0 negative (< 0), 1 neutral (== 0), 2 positive (> 0)."""
    y = np.asarray(y, dtype=np.float64)
    return np.where(y < 0, 0, np.where(y == 0, 1, 2)).astype(np.int64)


def sentiment_class7(y: np.ndarray) -> np.ndarray:
    """7-way class of regression labels: round(clip(y, -3, 3)) + 3 (round half to even)."""
    return (np.round(np.clip(np.asarray(y, dtype=np.float64), -3.0, 3.0)) + 3).astype(np.int64)


def sentiment_binary(y: np.ndarray) -> np.ndarray:
    """Has0 binary class: 0 negative (y < 0), 1 non-negative (y >= 0)."""
    return (np.asarray(y, dtype=np.float64) >= 0).astype(np.int64)


@dataclass
class _Split:
    name: str
    file_key: str
    ids: list[str]
    raw_text: list[str]
    labels: np.ndarray            # float32 (n,)
    text: np.ndarray              # int64 (n, T) ids or float32 (n, T, F) features
    token_ids: np.ndarray | None  # int64 (n, T) when text_bert exists
    audio: np.ndarray
    vision: np.ndarray
    valid: dict[str, np.ndarray]  # modality -> bool (n, T_m)

    @property
    def n(self) -> int:
        return len(self.labels)


PICKLE_RISK = ("a pickle file can run any code on this computer when it is opened, so robustmm does not open "
               "pickles unless told to")
NPZ_META_KEY = "__robustmm_mmsa__"
NPZ_FORMAT = "robustmm-mmsa-npz-1"


def converted_path(path: str | Path) -> Path:
    """Where ``robustmm data convert mmsa`` puts the safe copy of ``path``: same name, ``.npz``."""
    return Path(path).with_suffix(".npz")


def _npz_value(split: str, key: str, value: Any, source: Path) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "O" or arr.dtype.kind == "S":
        try:
            arr = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()], dtype=str)
        except Exception as exc:  # noqa: BLE001 - ragged or nested values
            raise DataError(f"MMSA file {source}, split '{split}', key '{key}': cannot be stored as an array "
                            f"({exc}); the file does not follow the MMSA layout") from None
    return arr


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (about 0.6 s per GB, measured in the README's Security section)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save_mmsa_npz(data: dict, out: str | Path, source: str | Path | None = None) -> Path:
    """Write the splits of an MMSA dict as a ``.npz`` (numbers and text only; read with
    ``allow_pickle=False``). ``source`` is recorded with its size and sha256, so that a changed
    source is noticed, also when an edit keeps its size."""
    from robustmm.io import write_atomic

    out = Path(out)
    src = Path(source) if source is not None else out
    if not isinstance(data, dict):
        raise DataError(f"MMSA file {src}: top level is a {type(data).__name__}, expected a dict with keys "
                        "'train', 'valid', 'test'. Is this an MMSA feature pickle?")
    arrays: dict[str, np.ndarray] = {}
    for split, raw in data.items():
        if not isinstance(raw, dict):
            raise DataError(f"MMSA file {src}, split '{split}': is a {type(raw).__name__}, expected a dict of arrays")
        for key, value in raw.items():
            if "/" in str(split) or "/" in str(key):
                raise DataError(f"MMSA file {src}: key '{split}/{key}' holds '/', which the MMSA layout never uses")
            arrays[f"{split}/{key}"] = _npz_value(str(split), str(key), value, src)
    recorded = source is not None and src.is_file()
    meta = {"format": NPZ_FORMAT, "source": src.name,
            "source_size": src.stat().st_size if recorded else None,
            "source_sha256": file_sha256(src) if recorded else None}
    arrays[NPZ_META_KEY] = np.asarray(json.dumps(meta))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_atomic(out, write)
    return out


def load_mmsa_npz(path: str | Path, source: Path | None = None) -> dict:
    """Read a ``.npz`` written by :func:`save_mmsa_npz` (never unpickles anything)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive[NPZ_META_KEY])) if NPZ_META_KEY in archive.files else {}
            data: dict[str, dict[str, np.ndarray]] = {}
            for name in archive.files:
                if name == NPZ_META_KEY:
                    continue
                split, _, key = name.partition("/")
                data.setdefault(split, {})[key] = archive[name]
    except Exception as exc:  # noqa: BLE001 - zip/np errors of a damaged file
        raise DataError(f"MMSA file {path} cannot be read as a .npz ({type(exc).__name__}: {exc}); the file is "
                        "truncated or not an MMSA conversion: convert the original again with "
                        "'robustmm data convert mmsa FILE.pkl'") from None
    if meta.get("format") != NPZ_FORMAT:
        raise DataError(f"MMSA file {path} is a .npz without robustmm's MMSA record; write it with "
                        "'robustmm data convert mmsa FILE.pkl'")
    if source is not None and source.is_file() and meta.get("source_size") is not None:
        _check_source(path, source, meta)
    return data


def _check_source(path: Path, source: Path, meta: dict) -> None:
    """Refuse a ``.npz`` converted from another version of ``source``. The size is compared first
    (free); the sha256 always follows, since an edit may keep the size and the modification time."""
    again = f"convert it again with 'robustmm data convert mmsa {source} --force'"
    marker = synthetic_marker(source.parent)
    if marker is not None and marker.get("file") in (None, source.name):
        again += (f", or, as robustmm generated it, delete the folder {source.parent} and let the study's "
                  "data.synthetic write it again (the same arguments give the same file)")
    size = source.stat().st_size
    if meta["source_size"] != size:
        raise DataError(f"MMSA file {path} was converted from a different version of {source} (size "
                        f"{meta['source_size']} bytes, now {size}); {again}")
    if meta.get("source_sha256") is None:
        # a copy from before the hash was recorded cannot be told from a stale one
        raise DataError(f"MMSA file {path} was converted by an older robustmm that recorded no sha256 of "
                        f"{source}, so a changed pickle of the same size would go unnoticed; {again}")
    if meta["source_sha256"] != file_sha256(source):
        raise DataError(f"MMSA file {path} was converted from a different version of {source} (same size, "
                        f"other content: its sha256 differs); {again}")


def _no_mmsa_file(path: Path) -> DataError:
    return DataError(f"MMSA file {path} does not exist. Point data.root at the file (aligned_50.pkl, "
                     "unaligned_50.pkl or its .npz), or at its folder and name the file with data.options.file "
                     "(robustmm data check mmsa: --option file=NAME); 'robustmm data synth mmsa --out FILE' "
                     "writes a synthetic one.")


def check_mmsa_file(path: str | Path) -> None:
    """The MMSA file ``path`` (or, for a pickle, its converted ``.npz`` next to it) exists; the messages are
    those :func:`load_mmsa_pickle` gives."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"MMSA file {path} does not exist; convert the pickle with "
                            f"'robustmm data convert mmsa {path.with_suffix('.pkl')}'")
    elif not path.is_file() and not converted_path(path).is_file():
        raise _no_mmsa_file(path)


def read_mmsa_pickle(path: str | Path) -> dict:
    """Unpickle an MMSA file (pickle, then joblib for compressed dumps). Runs code from the file:
    only for files the user trusts (``trust_pickle``, ``robustmm data convert mmsa``)."""
    path = Path(path)
    if not path.is_file():
        raise _no_mmsa_file(path)
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except Exception as pickle_exc:  # noqa: BLE001 - any failure means "try joblib"
        try:
            import joblib
        except ImportError:
            raise DataError(f"MMSA file {path} could not be read with pickle ({pickle_exc!r}) and joblib is not "
                            "installed. Install joblib if the file is a joblib dump, else re-download the file.") from None
        try:
            data = joblib.load(path)
        except Exception as joblib_exc:  # noqa: BLE001
            raise DataError(f"MMSA file {path} is neither a pickle ({pickle_exc!r}) nor a joblib dump "
                            f"({joblib_exc!r}); the file is probably truncated or corrupt: re-download it.") from None
    if not isinstance(data, dict):
        raise DataError(f"MMSA file {path}: top level is a {type(data).__name__}, expected a dict with keys "
                        "'train', 'valid', 'test'. Is this an MMSA feature pickle?")
    return data


def load_mmsa_pickle(path: str | Path, trust_pickle: bool = False) -> dict:
    """The splits of an MMSA file, read safely.

    A ``.npz`` is read directly. For a pickle, its converted ``.npz`` next to it is preferred
    (written by ``robustmm data convert mmsa``); without one the pickle is opened only when
    ``trust_pickle`` is set, else a :class:`DataError` explains the risk and the two ways on.
    """
    path = Path(path)
    check_mmsa_file(path)
    if path.suffix.lower() == ".npz":
        return load_mmsa_npz(path)
    safe = converted_path(path)
    if safe.is_file():
        return load_mmsa_npz(safe, source=path)
    if not trust_pickle:
        raise DataError(f"MMSA file {path} is a pickle, and {PICKLE_RISK}. Convert it once to a safe .npz "
                        f"(read from then on): 'robustmm data convert mmsa {path}', or, if you trust the file's "
                        "source, set data.options.trust_pickle: true (--set data.options.trust_pickle=true)")
    log.warning("MMSA file %s: opening a pickle because data.options.trust_pickle is set", path)
    return read_mmsa_pickle(path)


def convert_mmsa(path: str | Path, out: str | Path | None = None) -> Path:
    """Unpickle ``path`` (the user vouches for it) and write its safe ``.npz`` copy; returns its path."""
    path = Path(path)
    data = read_mmsa_pickle(path)
    target = Path(out) if out is not None else converted_path(path)
    if target.suffix.lower() != ".npz":
        raise DataError(f"--out {target}: the converted file must end in .npz")
    if target.resolve() == path.resolve():
        raise DataError(f"--out {target} is the input file; choose another name")
    return save_mmsa_npz(data, target, source=path)


class MMSADataset(MultimodalDataset):
    """All three splits of one MMSA pickle as one dataset of sample dicts."""

    def __init__(
        self,
        path: str | Path,
        text_mode: TextMode = "ids",
        target: TargetKind = "regression",
        cls_id: int = 101,
        sep_id: int = 102,
        unk_id: int = 100,
        pad_id: int = 0,
        trust_pickle: bool = False,
    ) -> None:
        if text_mode not in ("ids", "features"):
            raise ConfigError(f"MMSADataset text_mode={text_mode!r}: use 'ids' (BERT token ids) or 'features'.")
        if target not in ("regression", "class3", "class7", "binary"):
            raise ConfigError(f"MMSADataset target={target!r}: use 'regression', 'class3', 'class7' or 'binary'.")
        self.root = Path(path)
        self.path = self.root
        self.text_mode: TextMode = text_mode
        self.target_kind: TargetKind = target
        self.cls_id, self.sep_id, self.unk_id, self.pad_id = cls_id, sep_id, unk_id, pad_id
        self.nonfinite_counts: dict[tuple[str, str], int] = {}
        self.report = DataReport()
        self._raw_keys: list[set[str]] = []

        data = load_mmsa_pickle(self.root, trust_pickle=trust_pickle)
        self._splits: list[_Split] = [self._read_split(data, name) for name in SPLITS]
        del data
        ids = [i for s in self._splits for i in s.ids]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dupes = list(dict.fromkeys(i for i in ids if i in seen or seen.add(i)))
            raise DataError(f"MMSA file {self.root}: utterance {form(len(dupes), 'id')} {dupes[:5]}"
                            f"{f' (and {len(dupes) - 5} more)' if len(dupes) > 5 else ''} "
                            f"{form(len(dupes), 'appears', 'appear')} more than once "
                            "(key 'id' over all splits); each utterance needs its own id")
        self.aligned = not any("audio_lengths" in s or "vision_lengths" in s for s in self._raw_keys)
        self._check_consistent_shapes()

        self._offsets = [0]
        for s in self._splits:
            self._offsets.append(self._offsets[-1] + s.n)
        self.report.subjects_in_table = self.report.subjects_used = self._offsets[-1]
        self._targets = {s.name: self._make_targets(s.labels) for s in self._splits}

        first = self._splits[0]
        t_len = first.text.shape[1]
        if text_mode == "ids":
            text_spec = ModalitySpec("text", "tokens", (t_len,), special_ids=(cls_id, sep_id), unk_id=unk_id, pad_id=pad_id)
        else:
            text_spec = ModalitySpec("text", "sequence", tuple(first.text.shape[1:]), special_ids=(cls_id, sep_id))
        self.modalities = {
            "text": text_spec,
            "audio": ModalitySpec("audio", "sequence", tuple(first.audio.shape[1:])),
            "vision": ModalitySpec("vision", "sequence", tuple(first.vision.shape[1:])),
        }
        self.task = sentiment_task(target)

    # ------------------------------------------------------------------ reading / validation
    def _err(self, split_key: str, key: str, problem: str, fix: str) -> DataError:
        return DataError(f"MMSA file {self.root}, split '{split_key}', key '{key}': {problem}. {fix}")

    def _read_split(self, data: dict, name: str) -> _Split:
        file_key = next((k for k in _FILE_SPLIT_KEYS[name] if k in data), None)
        if file_key is None:
            raise DataError(f"MMSA file {self.root}: top-level split '{_FILE_SPLIT_KEYS[name][0]}' is missing "
                            f"(found keys {sorted(map(str, data))}). An MMSA pickle needs 'train', 'valid' and "
                            "'test'; re-export the file with all three splits.")
        raw = data[file_key]
        if not isinstance(raw, dict):
            raise DataError(f"MMSA file {self.root}, split '{file_key}': is a {type(raw).__name__}, expected a dict "
                            "of arrays ('text', 'text_bert', 'audio', 'vision', 'regression_labels', 'id', ...).")
        self._raw_keys.append(set(raw))

        required = ["id", "regression_labels", "audio", "vision"]
        required.append("text_bert" if self.text_mode == "ids" else "text")
        for key in required:
            if key not in raw:
                fix = ("With text_mode='ids' BERT token ids are needed; use text_mode='features' for files "
                       "without them." if key == "text_bert" else
                       "Re-export the file in the MMSA layout (see docs/protocols/mmsa_format.md).")
                raise self._err(file_key, key, f"missing (found keys {sorted(map(str, raw))})", fix)

        labels = self._numeric(raw, file_key, "regression_labels", None)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise self._err(file_key, "regression_labels", f"has shape {labels.shape}, expected (N,) or (N, 1)",
                            "Store one sentiment score per utterance.")
        n = labels.shape[0]
        labels = labels.astype(np.float32)
        bad = ~np.isfinite(labels) | (np.abs(labels) > 3.0 + _LABEL_TOL)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self._err(file_key, "regression_labels",
                            f"{counted(int(bad.sum()), 'value')} outside [-3, 3] or not finite (first: row {i}, "
                            f"value {labels[i]})",
                            "MOSI/MOSEI sentiment scores lie in [-3, 3]; fix or drop those rows.")
        labels = np.clip(labels, -3.0, 3.0)

        ids = self._strings(raw, file_key, "id", n)
        raw_text = self._strings(raw, file_key, "raw_text", n) if "raw_text" in raw else [""] * n

        token_ids = attention = None
        if "text_bert" in raw:
            tb = self._numeric(raw, file_key, "text_bert", 3, n)
            if tb.shape[1] < 2:
                raise self._err(file_key, "text_bert", f"has shape {tb.shape}, expected (N, 3, T): ids, attention "
                                "mask, segment ids", "Re-export the BERT inputs.")
            ids_f = tb[:, 0, :]
            if not np.all(np.isfinite(ids_f)) or np.any(ids_f < 0) or np.any(ids_f != np.round(ids_f)):
                raise self._err(file_key, "text_bert", "row 0 (token ids) holds negative, fractional or "
                                "non-finite values", "text_bert[:, 0, :] must be BERT vocabulary ids.")
            token_ids = ids_f.astype(np.int64)
            attention = tb[:, 1, :] != 0

        if self.text_mode == "ids":
            text = token_ids
            text_valid = attention
        else:
            text = self._numeric(raw, file_key, "text", 3, n).astype(np.float32, copy=False)
            text = self._zero_nonfinite(text, name, "text")
            if attention is not None:
                if attention.shape[1] != text.shape[1]:
                    raise self._err(file_key, "text_bert", f"has {attention.shape[1]} positions but 'text' has "
                                    f"{text.shape[1]}", "Both must come from the same tokenisation.")
                text_valid = attention
            else:
                text_valid = np.any(text != 0, axis=2)
        t_len = text.shape[1]

        seqs: dict[str, np.ndarray] = {}
        valid = {"text": np.ascontiguousarray(text_valid, dtype=bool)}
        for m in ("audio", "vision"):
            x = self._numeric(raw, file_key, m, 3, n).astype(np.float32, copy=False)
            x = self._zero_nonfinite(x, name, m)
            seqs[m] = x
            length_key = f"{m}_lengths"
            if length_key in raw:
                lengths = self._lengths(raw, file_key, length_key, n, x.shape[1])
                valid[m] = np.arange(x.shape[1])[None, :] < lengths[:, None]
            elif x.shape[1] == t_len:
                valid[m] = valid["text"].copy()
            else:
                valid[m] = np.ones((n, x.shape[1]), dtype=bool)

        return _Split(name=name, file_key=file_key, ids=ids, raw_text=raw_text, labels=labels, text=text,
                      token_ids=token_ids, audio=seqs["audio"], vision=seqs["vision"], valid=valid)

    def _numeric(self, raw: dict, split_key: str, key: str, ndim: int | None, n: int | None = None) -> np.ndarray:
        try:
            arr = np.asarray(raw[key])
        except Exception as exc:  # noqa: BLE001 - ragged lists and the like
            raise self._err(split_key, key, f"cannot be read as an array ({exc})", "Store a numeric numpy array.") from None
        if arr.dtype.kind not in "biuf":
            raise self._err(split_key, key, f"has dtype {arr.dtype}, expected numbers", "Store a numeric numpy array.")
        if ndim is not None and arr.ndim != ndim:
            raise self._err(split_key, key,
                            f"has {counted(arr.ndim, 'dimension')} (shape {arr.shape}), expected {ndim}",
                            "Check that the array is stored per utterance in the MMSA layout.")
        if n is not None and arr.shape[0] != n:
            raise self._err(split_key, key, f"has {arr.shape[0]} rows but 'regression_labels' has {n}",
                            "Every array of a split needs one row per utterance.")
        return arr

    def _strings(self, raw: dict, split_key: str, key: str, n: int) -> list[str]:
        values = raw[key]
        try:
            out = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values, dtype=object).ravel()]
        except Exception as exc:  # noqa: BLE001
            raise self._err(split_key, key, f"cannot be read as a list of strings ({exc})", "Store one string per row.") from None
        if len(out) != n:
            raise self._err(split_key, key, f"has {len(out)} entries but 'regression_labels' has {n}",
                            "Every array of a split needs one row per utterance.")
        return out

    def _lengths(self, raw: dict, split_key: str, key: str, n: int, seq_len: int) -> np.ndarray:
        lengths = self._numeric(raw, split_key, key, 1, n)
        if not np.all(lengths == np.round(lengths)):
            raise self._err(split_key, key, "holds fractional values", "Lengths are frame counts.")
        lengths = lengths.astype(np.int64)
        if np.any(lengths < 0):
            i = int(np.flatnonzero(lengths < 0)[0])
            raise self._err(split_key, key, f"row {i} has negative length {lengths[i]}", "Lengths are frame counts >= 0.")
        if np.any(lengths > seq_len):
            i = int(np.flatnonzero(lengths > seq_len)[0])
            raise self._err(split_key, key, f"row {i} has length {lengths[i]}, longer than the sequence length "
                            f"{seq_len} of '{key[:-len('_lengths')]}'", "Lengths must not exceed the padded sequence length.")
        return lengths

    def _zero_nonfinite(self, x: np.ndarray, split: str, modality: str) -> np.ndarray:
        # row blocks bound the temporary boolean mask on multi-GB MOSEI arrays
        count = 0
        for start in range(0, x.shape[0], 1024):
            block = x[start:start + 1024]
            bad = ~np.isfinite(block)
            k = int(bad.sum())
            if k:
                if not x.flags.writeable:
                    x = x.copy()
                    block = x[start:start + 1024]
                block[bad] = 0.0
                count += k
        if count:
            self.nonfinite_counts[(split, modality)] = count
            note = f"MMSA file {self.root}, split '{split}': {counted(count, f'non-finite {modality} value')} set to 0"
            self.report.notes.append(note)
            log.warning("%s", note)
        return x

    def _check_consistent_shapes(self) -> None:
        first = self._splits[0]
        for s in self._splits[1:]:
            for key, a, b in (("text_bert" if self.text_mode == "ids" else "text", first.text, s.text),
                              ("audio", first.audio, s.audio), ("vision", first.vision, s.vision)):
                if a.shape[1:] != b.shape[1:]:
                    raise self._err(s.file_key, key, f"has per-sample shape {b.shape[1:]} but split "
                                    f"'{first.file_key}' has {a.shape[1:]}", "All splits must share padded lengths "
                                    "and feature sizes.")

    def _make_targets(self, y: np.ndarray) -> np.ndarray:
        if self.target_kind == "regression":
            return y.astype(np.float32)
        return {"class3": sentiment_class3, "class7": sentiment_class7, "binary": sentiment_binary}[self.target_kind](y)

    # ------------------------------------------------------------------ dataset interface
    def _locate(self, index: int) -> tuple[_Split, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        k = bisect.bisect_right(self._offsets, index) - 1
        return self._splits[k], index - self._offsets[k]

    def _split(self, split: str) -> _Split:
        name = "val" if split == "valid" else split
        if name not in SPLITS:
            raise ConfigError(f"unknown MMSA split {split!r}: use 'train', 'val' or 'test'.")
        return self._splits[SPLITS.index(name)]

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, r = self._locate(index)
        text = torch.tensor(s.text[r])
        valid = {m: torch.from_numpy(s.valid[m][r].copy()) for m in ("text", "audio", "vision")}
        value = self._targets[s.name][r]
        if self.target_kind == "regression":
            target = torch.tensor(float(value), dtype=torch.float32)
        else:
            target = torch.tensor(int(value), dtype=torch.long)
        meta = {"subject": s.ids[r], "split": s.name, "regression_label": float(s.labels[r]),
                "raw_text": s.raw_text[r]}
        if self.text_mode == "features" and s.token_ids is not None:
            meta["token_ids"] = torch.from_numpy(s.token_ids[r].copy())
        return {
            "inputs": {"text": text, "audio": torch.tensor(s.audio[r]), "vision": torch.tensor(s.vision[r])},
            "present": {m: bool(v.any()) for m, v in valid.items()},
            "valid": valid,
            "target": target,
            "meta": meta,
        }

    def largest_token_id(self) -> int | None:
        """The largest text token id over every split (None when text comes as features)."""
        if self.text_mode != "ids":
            return None
        return max((int(s.text.max()) for s in self._splits if s.text.size), default=-1)

    def subject_ids(self) -> list[str]:
        """The ``id`` field ("video$_$clip") of every item; the file fixes the splits."""
        return [i for s in self._splits for i in s.ids]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {m: np.concatenate([s.valid[m].any(axis=1) for s in self._splits]) for m in self.modalities}

    def stratify_labels(self) -> np.ndarray:
        """3-way sentiment class of every item, whatever the target: the sign classes are never too
        rare to stratify, unlike the extreme class7 classes (the file's splits are fixed anyway)."""
        return np.concatenate([sentiment_class3(s.labels) for s in self._splits])

    def class_labels(self) -> np.ndarray | None:
        """The target class of every item (None for the regression target, which has no classes)."""
        if self.target_kind == "regression":
            return None
        return np.concatenate([self._targets[s.name] for s in self._splits])

    def predefined_splits(self) -> dict[str, list[int]]:
        return {s.name: list(range(self._offsets[k], self._offsets[k + 1])) for k, s in enumerate(self._splits)}

    # ------------------------------------------------------------------ conveniences
    def token_ids(self, split: str) -> np.ndarray:
        """BERT input ids (n, T) int64 of one split ('train'/'val'/'test'), padding = pad id;
        for MACI's bias-word mining together with :meth:`labels`."""
        s = self._split(split)
        if s.token_ids is None:
            raise DataError(f"MMSA file {self.root}, split '{s.file_key}', key 'text_bert': missing, so token ids "
                            "are unavailable. Bias-word mining needs a file with BERT input ids.")
        return s.token_ids.copy()

    def labels(self, split: str) -> np.ndarray:
        """Targets of one split as numbers (float32 regression values or int64 classes)."""
        return self._targets[self._split(split).name].copy()

    def regression_labels(self, split: str) -> np.ndarray:
        """Raw sentiment scores in [-3, 3] of one split."""
        return self._split(split).labels.copy()


# ---------------------------------------------------------------------- study config -> dataset
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npz")


def sentiment_task(target: str) -> TaskSpec:
    """The task of ``data.options.target``."""
    return {
        "regression": SentimentTaskSpec("regression", 1, adapter="sentiment_regression"),
        "class3": SentimentTaskSpec("multiclass", 3, CLASS3_NAMES, adapter="sentiment_class3"),
        "class7": SentimentTaskSpec("multiclass", 7, CLASS7_NAMES, adapter="sentiment_class7"),
        "binary": TaskSpec("binary", 2, BINARY_NAMES),
    }[target]


class MMSAOptions(ConfigModel):
    """``data.options`` of ``data.kind: mmsa``."""

    model_config = ConfigDict(extra="forbid")
    #: file inside ``data.root`` when the root is a folder (ignored when the root is the file)
    file: str = "aligned_50.pkl"
    text_mode: TextMode = "ids"
    target: TargetKind = "regression"
    cls_id: int = 101
    sep_id: int = 102
    unk_id: int = 100
    pad_id: int = 0
    #: open a pickle without a converted .npz next to it (pickles can run code: trusted files only)
    trust_pickle: bool = False

    @field_validator("file")
    @classmethod
    def _file_inside_root(cls, value: str) -> str:
        return check_relative(value, "file")  # data.synthetic writes it (and its .npz, README, marker) there


class MMSASynthOptions(ConfigModel):
    """``data.synthetic`` of ``data.kind: mmsa``: arguments of
    :func:`robustmm.data.synth.mmsa.write_synthetic_mmsa` (the file name is ``options.file``)."""

    model_config = ConfigDict(extra="forbid")
    n_train: int = Field(300, ge=10)
    n_valid: int = Field(80, ge=5)
    n_test: int = Field(200, ge=5)
    aligned: bool = True
    seq_len: int = Field(50, ge=3)
    audio_len: int | None = Field(None, ge=1)
    vision_len: int | None = Field(None, ge=1)
    dims: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (768, 5, 20)
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's seed range
    bias_strength_train: float = Field(0.8, ge=0.0, le=1.0)
    bias_strength_test: float = Field(0.0, ge=0.0, le=1.0)
    # mechanism knobs (see robustmm.data.synth.mmsa; defaults = generator version 2)
    validation: Literal["in_distribution", "shifted"] = "in_distribution"
    shortcut_words: Literal["every_split", "train_only"] = "every_split"
    bias_words_per_sample: int = Field(2, ge=0)
    sentiment_word_rate: float = Field(0.15, ge=0.0)
    signal_fraction: dict[Literal["text", "audio", "vision"], Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        default_factory=dict)
    view_noise: dict[Literal["text", "audio", "vision"], Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    label_flip: float = Field(0.0, ge=0.0, lt=0.5)
    sentiment_vocab: int = Field(30, ge=1, le=100)
    word_echo: dict[Literal["audio", "vision"], Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _what_the_generator_needs(self) -> "MMSASynthOptions":
        if self.aligned and {self.audio_len, self.vision_len} - {None, self.seq_len}:
            raise ValueError(f"aligned files have one audio/vision frame per token: audio_len and vision_len must be "
                             f"null or seq_len ({self.seq_len}); set aligned: false for other lengths")
        if not self.aligned and any(v > 0 for v in self.word_echo.values()):
            raise ValueError("word_echo needs aligned: true (one audio/vision frame per token)")
        return self


def _validated(model: type[BaseModel], raw: dict, prefix: str) -> Any:
    from robustmm.config.loader import format_validation_error

    try:
        return model.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, "data (kind: mmsa)", prefix=prefix)) from None


def resolve_mmsa_file(root: Path, options: MMSAOptions) -> Path:
    """``data.root`` is either the pickle itself or the folder that holds ``options.file``."""
    root = Path(root)
    if root.is_file() or root.suffix.lower() in PICKLE_SUFFIXES:
        return root
    return root / options.file


def check_root(cfg: Any) -> None:
    """The MMSA file data.root names, or holds as data.options.file, exists (robustmm.data.registry.check_data_root:
    before a run folder is made)."""
    check_mmsa_file(resolve_mmsa_file(cfg.root, _validated(MMSAOptions, cfg.options, "data.options")))


def build_from_config(cfg: Any, progress: bool = True) -> MMSADataset:
    """``data.kind: mmsa``: the MMSA pickle at ``data.root`` (a file, or a folder holding
    ``options.file``); when it does not exist and ``data.synthetic`` is given, a synthetic file
    in the same layout is written into the folder ``data.root`` first."""
    from robustmm.data.registry import create_once
    from robustmm.data.synth.mmsa import write_synthetic_mmsa

    options = _validated(MMSAOptions, cfg.options, "data.options")
    path = resolve_mmsa_file(cfg.root, options)
    if not path.exists() and cfg.synthetic is not None:
        synth = _validated(MMSASynthOptions, cfg.synthetic, "data.synthetic")
        if path == Path(cfg.root):
            raise ConfigError(f"data.root {cfg.root} names a file, but data.synthetic needs a folder to write "
                              f"into: set data.root to a folder and data.options.file to the file name "
                              f"(e.g. root: {Path(cfg.root).parent}, options.file: {Path(cfg.root).name}).")
        create_once(Path(cfg.root), lambda folder: write_synthetic_mmsa(folder / options.file,
                                                                       **synth.model_dump()))
    if cfg.synthetic is not None:
        check_synthetic(cfg)
    return MMSADataset(path, text_mode=options.text_mode, target=options.target, cls_id=options.cls_id,
                       sep_id=options.sep_id, unk_id=options.unk_id, pad_id=options.pad_id,
                       trust_pickle=options.trust_pickle)


def check_synthetic(cfg: Any) -> None:
    """Refuse a synthetic file written by another generator version or with other arguments; also run by
    robustmm.data.registry.check_data_root, before a run folder is made."""
    from robustmm.data.registry import check_synthetic_matches
    from robustmm.data.synth.mmsa import GENERATOR_VERSION, KNOB_DEFAULTS, validate_knobs

    options = _validated(MMSAOptions, cfg.options, "data.options")
    if resolve_mmsa_file(cfg.root, options) == Path(cfg.root):  # a file named directly: nothing generated there
        return
    folder, file = Path(cfg.root), options.file
    args = _validated(MMSASynthOptions, cfg.synthetic, "data.synthetic").model_dump()
    knobs = validate_knobs(**{k: args[k] for k in ("validation", "shortcut_words", "bias_words_per_sample",
                                                   "sentiment_word_rate", "signal_fraction", "view_noise",
                                                   "label_flip", "word_echo", "sentiment_vocab")})
    expected = {"version": GENERATOR_VERSION, "seed": args["seed"], "aligned": args["aligned"],
                "seq_len": args["seq_len"], "dims": list(args["dims"]),
                "n": [args["n_train"], args["n_valid"], args["n_test"]],
                "bias_strength_train": args["bias_strength_train"], "bias_strength_test": args["bias_strength_test"],
                **knobs}
    # label_flip / word_echo / sentiment_vocab came later: a marker without them was written at their defaults
    later = ("label_flip", "word_echo", "sentiment_vocab")
    check_synthetic_matches(folder, expected, defaults={k: KNOB_DEFAULTS[k] for k in later}, file=file)

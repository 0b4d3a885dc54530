"""The typed study schema.

Every section forbids unknown keys, so a misspelt key fails before any work starts (the loader
turns pydantic's errors into messages with the key path and the closest valid key). Method
options are validated by each method's own ``Options`` model (see ``robustmm.methods``).
"""

from __future__ import annotations

import types
import typing
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from robustmm.names import check_label, check_name
from robustmm.text import form

#: a missing rate (fraction of samples / time steps): 0 = nothing dropped, 1 = everything
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]


#: the error type of a boolean given for a number (the loader adds advice on YAML's yes/no/on/off)
BOOL_FOR_NUMBER = "bool_for_number"


class ConfigModel(BaseModel):
    """Base of every configuration model: a boolean is refused where a number is wanted. Pydantic would
    read True/False as 1/0, and YAML 1.1 reads an unquoted yes/no/on/off as a boolean, so
    ``--set training.epochs=yes`` would silently train one epoch."""

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, raw: Any) -> Any:
        # a model validator, not a field one: pydantic allows no 'before' validator on a union's 'kind'
        if not isinstance(raw, dict):
            return raw
        found = [(name, *loc) for name, field in cls.model_fields.items() if name in raw
                 for loc in _bools_for_numbers(field.annotation, raw[name])]
        if found:
            raise ValidationError.from_exception_data(cls.__name__, [
                InitErrorDetails(type=PydanticCustomError(BOOL_FOR_NUMBER, "a boolean where a number is wanted"),
                                 loc=loc, input=_item(raw, loc)) for loc in found])
        return raw


def _bools_for_numbers(annotation: Any, value: Any) -> list[tuple]:
    """Where in ``value`` (item paths; ``()``: the value itself) a boolean stands that ``annotation`` wants
    to be a number. Nested models check their own fields."""
    if isinstance(value, bool):
        kinds = _scalar_kinds(annotation)
        return [()] if kinds & {int, float} and not kinds & {bool, Any} else []
    return [(key, *loc) for member in _members(annotation) for key, item, item_type in _items(member, value)
            for loc in _bools_for_numbers(item_type, item)]


def _item(raw: dict, loc: tuple) -> Any:
    """The value at the item path ``loc`` of ``raw`` (shown in the error)."""
    for key in loc:
        raw = raw[key]
    return raw


def _members(annotation: Any) -> list[Any]:
    """The types a union (or ``Annotated`` type) is made of; a plain type is its only member."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _scalar_kinds(annotation: Any) -> set[Any]:
    """The scalar types a value of ``annotation`` may be (a Literal's values count by their type)."""
    kinds: set[Any] = set()
    for member in _members(annotation):
        kinds |= {type(v) for v in typing.get_args(member)} if typing.get_origin(member) is Literal else {member}
    return kinds


def _items(member: Any, value: Any) -> list[tuple[Any, Any, Any]]:
    """(key, item, the type wanted there) for each item of a list, tuple or mapping ``value`` that the
    container type ``member`` describes; none when ``member`` is not such a container."""
    origin, args = typing.get_origin(member), typing.get_args(member)
    if isinstance(value, (list, tuple)) and origin in (list, tuple, set, frozenset) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return list(zip(range(len(args)), value, args))
        return [(i, item, args[0]) for i, item in enumerate(value)]
    if isinstance(value, dict) and origin is dict and len(args) == 2:
        return [(k, item, args[1]) for k, item in value.items()]
    return []


class Section(ConfigModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data
class AdniSynthConfig(Section):
    """How to create the synthetic ADNI-format cohort when ``data.root`` does not exist."""

    subjects: int = Field(480, ge=20)
    seed: int = Field(0, ge=0)  # numpy's generators refuse negative seeds
    pet_missing: float = Field(0.3, ge=0.0, le=1.0)
    native_shape: tuple[PositiveInt, PositiveInt, PositiveInt] = (40, 48, 40)
    # mechanism knobs (robustmm.data.synth.adni; defaults = the version-2 cohort)
    #: fraction of the PET-only label signal that is a nonlinear function of MRI (0..1)
    pet_from_mri: float = Field(0.0, ge=0.0, le=1.0)
    #: noise sd on the latents MRI / PET show, and multiplier of the clinical scores' noise
    mri_noise: float = Field(0.0, ge=0.0)
    pet_noise: float = Field(0.3, ge=0.0)
    clinical_noise: float = Field(1.0, ge=0.0)
    #: multiplier of the PET volume's own nuisance (shift, texture, scale, voxel noise) MRI cannot predict
    pet_nuisance: float = Field(1.0, ge=0.0)
    #: 0: MRI shows PET's MRI-derived latent far from PET's regions; 1: on them (a local relation)
    pet_locality: float = Field(0.0, ge=0.0, le=1.0)
    #: amplitude of the MRI contrast that shows PET's MRI-derived latent (0.12: barely learnable)
    mri_latent_contrast: float = Field(0.12, ge=0.0)
    #: sd of the conversion noise relative to the latent severity (larger: noisier labels)
    label_noise: float = Field(0.4, ge=0.0)


class AdniDataConfig(Section):
    kind: Literal["adni"] = "adni"
    root: Path
    table: str = "ADNIMERGE.csv"
    manifest: str | None = "manifest.csv"
    mri_pattern: str | None = None
    pet_pattern: str | None = None
    subject_column: str = "PTID"
    months_column: str = "M"
    diagnosis_column: str = "DX"
    label_column: str | None = None
    horizon_months: float = Field(36.0, gt=0)
    clinical_columns: list[str] = Field(
        default_factory=lambda: ["AGE", "PTGENDER", "PTEDUCAT", "APOE4", "MMSE", "ADAS13", "CDRSB", "TAU", "PTAU"]
    )
    nan_policy: Literal["impute", "error"] = "impute"
    unmatched_subjects: Literal["skip", "error"] = "skip"
    volume_shape: tuple[PositiveInt, PositiveInt, PositiveInt] = (32, 40, 32)
    cache: bool = True
    #: processes preprocessing volumes on first use (default: the available cores)
    preprocess_workers: int | None = Field(None, ge=1)
    synthetic: AdniSynthConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "visit_column" in raw:  # documented once, never read
            raise ValueError("data.visit_column is no longer a key: visits are ordered by data.months_column "
                             "(M); delete the line")
        return raw


class TableModalityConfig(Section):
    suffix: str | None = None
    prefix: str | None = None
    regex: str | None = None
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "TableModalityConfig":
        given = [k for k in ("suffix", "prefix", "regex", "columns") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of suffix, prefix, regex, columns (got {given or 'none'})")
        return self


class GenericDataConfig(Section):
    """Data read by an adapter that validates its own options (tables, TCGA, MMSA, BraTS)."""

    kind: Literal["table", "tcga_porpoise", "dispro", "mmsa", "brats"]
    root: Path
    options: dict[str, Any] = Field(default_factory=dict)
    synthetic: dict[str, Any] | None = None


DataConfig = Annotated[Union[AdniDataConfig, GenericDataConfig], Field(discriminator="kind")]


class SplitConfig(Section):
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.25, gt=0.0, lt=0.6)
    folds: int | None = Field(None, ge=2)
    #: which fold is the test fold; "all" runs every fold and reports the mean over folds
    fold: int | Literal["all"] = 0

    @model_validator(mode="after")
    def _fold_in_range(self) -> "SplitConfig":
        if self.fold == "all" and self.folds is None:
            raise ValueError("fold 'all' needs 'folds' (e.g. folds: 5)")
        if isinstance(self.fold, int) and self.folds is None and self.fold != 0:
            # without folds the subjects are split once and the fold was silently ignored
            raise ValueError(f"fold {self.fold} needs 'folds' (e.g. folds: 5); without it the subjects are split "
                             "once, by val_fraction and test_fraction, and fold stays 0")
        if isinstance(self.fold, int) and self.folds is not None and not 0 <= self.fold < self.folds:
            raise ValueError(f"fold {self.fold} is out of range for folds={self.folds} (use 0..{self.folds - 1})")
        if self.folds is None and self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} leaves no "
                             "training subjects; their sum must be below 1")
        return self


# --------------------------------------------------------------------------- model
class VolumeEncoderConfig(Section):
    channels: list[int] = Field(default_factory=lambda: [8, 16, 32])
    strides: list[int] = Field(default_factory=lambda: [2, 2, 2])
    num_res_units: int = Field(1, ge=0)
    norm: Literal["batch", "instance", "group"] = "instance"
    shared: bool = False

    @model_validator(mode="after")
    def _same_length(self) -> "VolumeEncoderConfig":
        if len(self.channels) != len(self.strides):
            raise ValueError("channels and strides must have the same length")
        return self


class TableEncoderConfig(Section):
    hidden: list[int] = Field(default_factory=lambda: [64])


class SequenceEncoderConfig(Section):
    kind: Literal["gru", "transformer"] = "gru"
    hidden: int = 64
    layers: int = 1


class SegmentationNetConfig(Section):
    """Segmentation tasks (robustmm.models.segmentation): ``per_sequence`` = one encoder per
    sequence (``volume``), per-scale fusion (``fusion``), shared decoder; ``segresnet`` = MONAI
    SegResNet on the stacked sequences."""

    architecture: Literal["per_sequence", "segresnet"] = "per_sequence"


class ModelConfig(Section):
    embed_dim: int = Field(64, ge=4)
    fusion: Literal["concat", "attention"] = "concat"
    trunk_hidden: int = Field(64, ge=4)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    volume: VolumeEncoderConfig = Field(default_factory=VolumeEncoderConfig)
    table: TableEncoderConfig = Field(default_factory=TableEncoderConfig)
    sequence: SequenceEncoderConfig = Field(default_factory=SequenceEncoderConfig)
    segmentation: SegmentationNetConfig = Field(default_factory=SegmentationNetConfig)


# --------------------------------------------------------------------------- missing scenarios
class ScenarioBase(Section):
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else check_label(value, "scenario name")

    def _need_rate(self) -> None:
        if getattr(self, "rate", None) is None and getattr(self, "rates", None) is None:
            raise ValueError(f"scenario kind '{getattr(self, 'kind', '?')}' needs 'rate' (one value in [0, 1]) or "
                             "'rates' (a list of values in [0, 1])")


class NaturalScenario(ScenarioBase):
    kind: Literal["natural"]


class SubsetScenario(ScenarioBase):
    kind: Literal["subset"]
    modalities: list[str]


class AllSubsetsScenario(ScenarioBase):
    kind: Literal["all_subsets"]


class ModalityRateScenario(ScenarioBase):
    kind: Literal["modality_rate"]
    modality: str
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[Rate] | None = None

    @model_validator(mode="after")
    def _rate_or_rates(self) -> "ModalityRateScenario":
        if (self.rate is None) == (self.rates is None):
            raise ValueError("give exactly one of 'rate' or 'rates'")
        return self


class RandomSubsetsScenario(ScenarioBase):
    kind: Literal["random_subsets"]


class RandomModalityScenario(ScenarioBase):
    kind: Literal["random_modality"]
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[Rate] | None = None

    @model_validator(mode="after")
    def _has_rate(self) -> "RandomModalityScenario":
        self._need_rate()
        return self


class RMFMScenario(ScenarioBase):
    kind: Literal["rmfm"]
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[Rate] | None = None
    modality_rates: dict[str, Rate] | None = None
    modalities: list[str] | None = None
    shared_mask: bool = False
    training: bool = False

    @model_validator(mode="after")
    def _has_rate(self) -> "RMFMScenario":
        if not self.training:
            self._need_rate()
        return self


class TemporalBlockScenario(ScenarioBase):
    kind: Literal["temporal_block"]
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[Rate] | None = None
    modalities: list[str] | None = None

    @model_validator(mode="after")
    def _has_rate(self) -> "TemporalBlockScenario":
        self._need_rate()
        return self


ScenarioConfig = Annotated[
    Union[
        NaturalScenario,
        SubsetScenario,
        AllSubsetsScenario,
        ModalityRateScenario,
        RandomSubsetsScenario,
        RandomModalityScenario,
        RMFMScenario,
        TemporalBlockScenario,
    ],
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- training
class EarlyStoppingConfig(Section):
    """Deprecated spelling of :class:`SelectionConfig` (``training.early_stopping`` is read as
    ``training.selection``; ``monitor: null`` means ``primary``)."""

    #: validation metric to select the best epoch on; None = the task's primary metric
    monitor: str | None = None
    patience: int = Field(8, ge=1)
    min_epochs: int = Field(5, ge=0)


class SelectionConfig(Section):
    """One model-selection policy for every method of a study (see robustmm.engine.selection).

    Epochs before ``min_epochs`` are never restored and never stop training (a noisy validation
    metric cannot return an epoch-0/1 model); ``steps`` gives every training stage the same
    number of optimizer steps (every update a method makes counts) instead of ``epochs``;
    ``scenarios`` says under which missingness the monitor is measured on the validation subjects."""

    #: validation metric: ``loss`` (each method's validation loss), ``primary`` (the task's primary
    #: metric, or the method's own choice) or any metric name the methods report
    monitor: str = "loss"
    min_epochs: int = Field(5, ge=1)
    patience: int = Field(8, ge=1)
    steps: int | None = Field(None, ge=1)
    #: ``natural``: each validation subject with its own modalities; ``evaluation``: the mean of the
    #: monitor over the study's evaluation scenarios (every rate and subset they expand to); or a
    #: list of scenarios (as in ``evaluation.scenarios``), the mean over them
    scenarios: Literal["natural", "evaluation"] | list[ScenarioConfig] = "natural"


def _selection_from_early_stopping(raw: Any) -> Any:
    """``training.early_stopping`` (the old key) becomes ``training.selection`` with the old
    meaning (no monitor = the task's primary metric); keys given there win over ``selection``."""
    if not isinstance(raw, dict) or "early_stopping" not in raw:
        return raw
    raw = dict(raw)
    old = raw.pop("early_stopping")
    if isinstance(old, BaseModel):
        old = old.model_dump(exclude_unset=True)
    if not isinstance(old, dict):
        return {**raw, "early_stopping": old}  # let validation name the bad value
    sel = raw.get("selection") or {}
    sel = sel.model_dump(exclude_unset=True) if isinstance(sel, BaseModel) else dict(sel)
    moved = dict(old)
    if moved.get("monitor", "unset" if sel else None) is None:  # the old default: the task's primary metric
        moved["monitor"] = "primary"
    if isinstance(moved.get("min_epochs"), int) and moved["min_epochs"] < 1:
        moved["min_epochs"] = 1
    raw["selection"] = {**sel, **moved}
    return raw


class TrainingConfig(Section):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["cosine", "none"] = "cosine"
    warmup_epochs: int = Field(1, ge=0)
    grad_clip: float | None = 5.0
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    num_workers: int = Field(0, ge=0)
    threads: int | None = Field(None, ge=1)
    # accelerator fast path (robustmm/engine/fastpath.py)
    #: false: cuDNN autotuning (cudnn.benchmark) and TF32, runs no longer bit-reproducible
    deterministic: bool = True
    #: volumes and 3-D conv weights in channels-last-3d memory layout
    channels_last: bool = False
    #: torch.compile the per-modality encoders
    compile: bool = False
    #: keep the whole training split on the GPU when it fits in half of the free memory
    cohort_on_device: bool = False

    @model_validator(mode="before")
    @classmethod
    def _old_early_stopping(cls, raw: Any) -> Any:
        return _selection_from_early_stopping(raw)

    @property
    def early_stopping(self) -> EarlyStoppingConfig:
        """The selection policy under its old name (read-only)."""
        s = self.selection
        return EarlyStoppingConfig(monitor=None if s.monitor == "primary" else s.monitor, patience=s.patience,
                                   min_epochs=s.min_epochs)


# --------------------------------------------------------------------------- methods / eval / study
class MethodConfig(ConfigModel):
    """``name`` picks a registered method; every other key is validated by that method."""

    model_config = ConfigDict(extra="allow")
    name: str
    id: str | None = None

    @field_validator("name", "id")
    @classmethod
    def _safe_id(cls, value: str | None, info) -> str | None:
        # the id names the method's checkpoint folder and plots
        return None if value is None else check_name(value, f"method {info.field_name}")

    @property
    def run_id(self) -> str:
        return self.id or self.name

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EvaluationConfig(Section):
    scenarios: list[ScenarioConfig] = Field(default_factory=lambda: [NaturalScenario(kind="natural")])
    bootstrap: int = Field(1000, ge=0)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int | None = None
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    #: reference method (a method id) for the paired differences of a multi-seed study; ``auto``:
    #: dropout_baseline when the study has it, else none; null: no comparison
    compare_to: str | None = "auto"
    #: reuse per-subject encoder outputs across scenarios (methods that opt in); same scores
    encoder_cache: bool = True
    #: on CUDA, evaluate under autocast (bf16 where supported, else fp16)
    amp: bool = True


class ReportConfig(Section):
    plots: bool = True
    html: bool = True


#: the largest seed: numpy's and scikit-learn's generators take seeds in [0, 2**32 - 1]
MAX_SEED = 2**32 - 1


class StudyConfig(Section):
    name: str
    seed: int = Field(0, ge=0, le=MAX_SEED)
    output_dir: Path = Path("runs")
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    methods: list[MethodConfig]
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    #: Optuna search (validated by robustmm.tune when ``robustmm sweep`` runs)
    sweep: dict[str, Any] | None = None
    #: run the whole study once per seed into seed_<s>/ and aggregate over seeds
    #: (``[0, 1, 2]``, ``"0-4"`` or ``"0,2,5"``); ``seed`` is then unused
    seeds: list[int] | None = None
    #: the study file and the key paths set on the command line (robustmm.config.loader.load_study), so
    #: that checks made after reading (method options, data options, scenarios) name them in their errors
    _source: str | None = PrivateAttr(None)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str | None:
        return self._source

    @property
    def origins(self) -> dict[str, str]:
        return self._origins

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, value: Any) -> Any:
        return None if value is None else parse_seeds(value)

    @model_validator(mode="after")
    def _reference_method(self) -> "StudyConfig":
        ref = self.evaluation.compare_to
        ids = [m.run_id for m in self.methods]
        if ref not in (None, "auto") and ref not in ids:
            raise ValueError(f"evaluation.compare_to '{ref}' is not a method id of this study ({ids}); "
                             "use one of them, 'auto' or null")
        return self

    @field_validator("name")
    @classmethod
    def _safe_study_name(cls, value: str) -> str:
        return check_name(value, "study name")  # the run folder is output_dir/<name>/...

    @field_validator("methods")
    @classmethod
    def _unique_ids(cls, methods: list[MethodConfig]) -> list[MethodConfig]:
        if not methods:
            raise ValueError("list at least one method (e.g. '- name: dropout_baseline')")
        ids = [m.run_id for m in methods]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"method ids must be unique; give 'id:' to tell apart {dupes}")
        return methods


def parse_seeds(value: Any) -> list[int]:
    """``3``, ``"0-4"``, ``"0,2,5"``, ``"0-2,7"`` or a list of those -> a list of distinct seeds."""
    items = value if isinstance(value, (list, tuple)) else [value]
    seeds: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"seed {item!r} is not an integer")
        if isinstance(item, int):
            seeds.append(item)
            continue
        for part in str(item).replace(" ", "").split(","):
            lo, sep, hi = part.partition("-")
            if not (lo.isdigit() and (not sep or hi.isdigit())):
                raise ValueError(f"cannot read seeds '{item}': write a list like 0,2,5 or a range like 0-4")
            if sep and int(hi) < int(lo):
                raise ValueError(f"seed range '{part}' runs backwards; write {hi}-{lo}")
            if sep and int(hi) > MAX_SEED:  # said before the range is made
                raise ValueError(f"seed range '{part}' ends past the largest seed {MAX_SEED}")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    if not seeds:
        raise ValueError("give at least one seed")
    if any(s < 0 or s > MAX_SEED for s in seeds):
        raise ValueError(f"seeds must be in [0, {MAX_SEED}] (got {[s for s in seeds if s < 0 or s > MAX_SEED]})")
    dupes = sorted(s for s, n in Counter(seeds).items() if n > 1)
    if dupes:
        raise ValueError(f"{form(len(dupes), 'seed')} {dupes} listed twice; list each seed once")
    return seeds

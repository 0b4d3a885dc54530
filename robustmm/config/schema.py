"""The typed study schema.

Every section forbids unknown keys, so a misspelt key fails before any work starts (the loader
turns pydantic's errors into messages with the key path and the closest valid key). Method
options are validated by each method's own ``Options`` model (see ``robustmm.methods``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data
class AdniSynthConfig(Section):
    """How to create the synthetic ADNI-format cohort when ``data.root`` does not exist."""

    subjects: int = Field(480, ge=20)
    seed: int = 0
    pet_missing: float = Field(0.3, ge=0.0, le=1.0)
    native_shape: tuple[int, int, int] = (40, 48, 40)


class AdniDataConfig(Section):
    kind: Literal["adni"] = "adni"
    root: Path
    table: str = "ADNIMERGE.csv"
    manifest: str | None = "manifest.csv"
    mri_pattern: str | None = None
    pet_pattern: str | None = None
    subject_column: str = "PTID"
    visit_column: str = "VISCODE"
    months_column: str = "M"
    diagnosis_column: str = "DX"
    label_column: str | None = None
    horizon_months: float = Field(36.0, gt=0)
    clinical_columns: list[str] = Field(
        default_factory=lambda: ["AGE", "PTGENDER", "PTEDUCAT", "APOE4", "MMSE", "ADAS13", "CDRSB", "TAU", "PTAU"]
    )
    nan_policy: Literal["impute", "error"] = "impute"
    unmatched_subjects: Literal["skip", "error"] = "skip"
    volume_shape: tuple[int, int, int] = (32, 40, 32)
    cache: bool = True
    #: processes preprocessing volumes on first use (default: the available cores)
    preprocess_workers: int | None = Field(None, ge=1)
    synthetic: AdniSynthConfig | None = None


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
        if isinstance(self.fold, int) and (self.fold < 0 or (self.folds is not None and self.fold >= self.folds)):
            raise ValueError(f"fold {self.fold} is out of range for folds={self.folds} (use 0..{(self.folds or 1) - 1})")
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


# --------------------------------------------------------------------------- training
class EarlyStoppingConfig(Section):
    #: validation metric to select the best epoch on; None = the task's primary metric
    monitor: str | None = None
    patience: int = Field(8, ge=1)
    min_epochs: int = Field(5, ge=0)


class TrainingConfig(Section):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["cosine", "none"] = "cosine"
    warmup_epochs: int = Field(1, ge=0)
    grad_clip: float | None = 5.0
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
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


# --------------------------------------------------------------------------- missing scenarios
class _ScenarioBase(Section):
    name: str | None = None


class NaturalScenario(_ScenarioBase):
    kind: Literal["natural"]


class SubsetScenario(_ScenarioBase):
    kind: Literal["subset"]
    modalities: list[str]


class AllSubsetsScenario(_ScenarioBase):
    kind: Literal["all_subsets"]


class ModalityRateScenario(_ScenarioBase):
    kind: Literal["modality_rate"]
    modality: str
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[float] | None = None

    @model_validator(mode="after")
    def _rate_or_rates(self) -> "ModalityRateScenario":
        if (self.rate is None) == (self.rates is None):
            raise ValueError("give exactly one of 'rate' or 'rates'")
        return self


class RandomSubsetsScenario(_ScenarioBase):
    kind: Literal["random_subsets"]


class RandomModalityScenario(_ScenarioBase):
    kind: Literal["random_modality"]
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[float] | None = None


class RMFMScenario(_ScenarioBase):
    kind: Literal["rmfm"]
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[float] | None = None
    modality_rates: dict[str, float] | None = None
    modalities: list[str] | None = None
    shared_mask: bool = False
    training: bool = False


class TemporalBlockScenario(_ScenarioBase):
    kind: Literal["temporal_block"]
    rate: float | None = Field(None, ge=0.0, le=1.0)
    rates: list[float] | None = None
    modalities: list[str] | None = None


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


# --------------------------------------------------------------------------- methods / eval / study
class MethodConfig(BaseModel):
    """``name`` picks a registered method; every other key is validated by that method."""

    model_config = ConfigDict(extra="allow")
    name: str
    id: str | None = None

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
    #: reuse per-subject encoder outputs across scenarios (methods that opt in); same scores
    encoder_cache: bool = True
    #: on CUDA, evaluate under autocast (bf16 where supported, else fp16)
    amp: bool = True


class ReportConfig(Section):
    plots: bool = True
    html: bool = True


class StudyConfig(Section):
    name: str
    seed: int = 0
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

"""The ``sweep:`` section of a study file: search space, objectives, sampler, pruner, storage.

Example (see ``studies/adni_mci_sweep.yaml`` and ``docs/sweeps.md``)::

    sweep:
      n_trials: 40
      params:
        training.lr: {kind: float, low: 1.0e-4, high: 1.0e-2, log: true}
        model.embed_dim: {kind: categorical, choices: [32, 64, 128]}
        methods.dropout_baseline.dropout.rate:
          {kind: float, low: 0.1, high: 0.7, when: {methods.dropout_baseline.dropout.kind: random_modality}}
      objectives:
        - {metric: auc, scenario: natural, method: dropout_baseline}
      pruner: {kind: median, options: {n_warmup_steps: 3}}

Parameter names are dotted config paths; a list element is addressed by its index or, in
``methods``, by the method's id (``methods.dropout_baseline.keep_complete``). Parsing only needs
pydantic and optuna, so sweep workers can start without loading torch.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import optuna
from pydantic import Field, ValidationError, model_validator

from robustmm.config.loader import format_validation_error
from robustmm.config.schema import Section
from robustmm.errors import ConfigError

class _ParamBase(Section):
    #: only suggest this parameter when every listed config path holds one of the given values
    #: (evaluated on the trial's config after the parameters listed before this one were applied)
    when: dict[str, Any] | None = None

    def condition(self) -> dict[str, list[Any]]:
        return {path: (v if isinstance(v, list) else [v]) for path, v in (self.when or {}).items()}


class FloatParam(_ParamBase):
    kind: Literal["float"]
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = False
    step: float | None = Field(None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _range(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("'step' cannot be combined with 'log: true'")
        return self

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        return self.step is None or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step))

    def describe(self) -> str:
        return f"{self.low} to {self.high}" + (f" in steps of {self.step}" if self.step is not None else "")


class IntParam(_ParamBase):
    kind: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> "IntParam":
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("'step' cannot be combined with 'log: true'")
        return self

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)

    def describe(self) -> str:
        return f"{self.low} to {self.high}" + (f" in steps of {self.step}" if self.step != 1 else "")


class CategoricalParam(_ParamBase):
    kind: Literal["categorical"]
    #: any YAML values; lists and mappings (e.g. channel lists) are stored in Optuna as JSON text
    choices: list[Any] = Field(min_length=1)

    def bounds(self) -> list[Any]:
        return list(self.choices)

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return f"choices {self.choices}"


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scaled range needs low > 0 (got {low})")


ParamSpec = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="kind")]


class ObjectiveSpec(Section):
    """One value read from the trial's validation results: ``metric`` of ``method`` under
    ``scenario`` (a scenario name such as ``natural`` or ``pet_missing@0.4``, or a rate group's
    ``pet_missing:AUILC``)."""

    metric: str
    scenario: str = "natural"
    #: method id in the study; may be left out when the study has one method
    method: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    name: str | None = None

    def resolved_direction(self) -> str:
        if self.direction is not None:
            return self.direction
        from robustmm.metrics.paired import higher_is_better  # by name: hd95_wt, val_loss, ibs ...

        return "maximize" if higher_is_better(self.metric) else "minimize"

    def label(self) -> str:
        return self.name or f"{self.method}:{self.scenario}:{self.metric}"


class SamplerConfig(Section):
    #: default: tpe for one objective, nsga2 (Pareto) for several
    kind: Literal["tpe", "random", "cmaes", "gp", "nsga2", "nsga3", "grid"] | None = None
    #: with a seed, each worker process samples with a seed derived from (seed, worker index, trials
    #: already taken from the queue when it starts): see :func:`sampler_seed`
    seed: int | None = None
    #: keyword arguments of the Optuna sampler class (e.g. n_startup_trials for tpe)
    options: dict[str, Any] = Field(default_factory=dict)


class PrunerConfig(Section):
    #: default: median for one objective; pruning is not available with several objectives
    kind: Literal["none", "median", "percentile", "successive_halving", "hyperband", "threshold",
                  "patient"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: validation metric reported each epoch (default: the objective's metric)
    metric: str | None = None
    #: training stage whose epochs are reported (default: the objective's method id, which is the
    #: stage name of single-stage methods; name the stage for multi-stage methods)
    stage: str | None = None


class HeartbeatConfig(Section):
    """A running trial records a heartbeat every ``interval`` seconds; a trial without one for
    ``grace`` seconds lost its worker: it is marked failed and queued again (up to ``max_retry``
    times)."""

    interval: int = Field(30, ge=1)
    grace: int | None = Field(None, ge=1)
    max_retry: int = Field(2, ge=0)

    @property
    def grace_seconds(self) -> int:
        return self.grace if self.grace is not None else 3 * self.interval

    @model_validator(mode="after")
    def _grace_after_interval(self) -> "HeartbeatConfig":
        if self.grace is not None and self.grace <= self.interval:
            raise ValueError(f"grace ({self.grace}) must exceed interval ({self.interval}), or every trial "
                             "would look abandoned between two heartbeats")
        return self


class SweepConfig(Section):
    study_name: str | None = None
    n_trials: int = Field(20, ge=1)
    #: seconds after which a worker starts no new trial (the running one finishes)
    timeout: float | None = Field(None, gt=0)
    #: Optuna storage: an SQLAlchemy URL (sqlite:///, postgresql://, mysql://) or journal:PATH;
    #: default: an SQLite file in the sweep folder
    storage: str | None = None
    #: the sweep folder (default: <output_dir>/<study>/sweeps/<study_name>)
    output_dir: Path | None = None
    params: dict[str, ParamSpec] = Field(min_length=1)
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    heartbeat: HeartbeatConfig = Field(default_factory=HeartbeatConfig)
    #: parameter sets evaluated first (e.g. the current defaults), as {param name: value}
    initial_trials: list[dict[str, Any]] = Field(default_factory=list)
    #: bootstrap replicates during trials (objectives use point values; 0 saves time); the final
    #: test evaluation uses the study's evaluation.bootstrap
    trial_bootstrap: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> "SweepConfig":
        multi = len(self.objectives) > 1
        if multi and self.pruner.kind not in (None, "none"):
            raise ValueError("pruning needs a single objective (Optuna cannot prune multi-objective trials); "
                             "remove pruner or keep one objective")
        if self.sampler.kind == "grid" and any(not isinstance(p, CategoricalParam) for p in self.params.values()):
            raise ValueError("the grid sampler needs every parameter to be categorical (list the grid values "
                             "as choices)")
        if self.sampler.kind == "cmaes" and multi:
            raise ValueError("the cmaes sampler handles one objective; use nsga2, nsga3, tpe, gp or random "
                             "for several")
        labels = [o.label() for o in self.objectives]
        if len(set(labels)) != len(labels):
            raise ValueError(f"objectives must differ (give 'name:' to tell them apart): {labels}")
        for i, trial in enumerate(self.initial_trials):
            unknown = sorted(set(trial) - set(self.params))
            if unknown:
                raise ValueError(f"initial_trials.{i} names {unknown}, which are not in params "
                                 f"({sorted(self.params)})")
            for name, value in trial.items():  # Optuna fails such a trial, or trains it outside the search space
                if not self.params[name].contains(value):
                    raise ValueError(f"initial_trials.{i}.{name}: {value!r} is not a value of sweep.params.{name} "
                                     f"({self.params[name].describe()}); change the value or the parameter's range")
        return self

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [o.resolved_direction() for o in self.objectives]

    @property
    def sampler_kind(self) -> str:
        return self.sampler.kind or ("nsga2" if self.multi_objective else "tpe")

    @property
    def pruner_kind(self) -> str:
        return self.pruner.kind or ("none" if self.multi_objective else "median")


def parse_sweep(raw: dict[str, Any] | None, source: str) -> SweepConfig:
    """Validate a study's ``sweep:`` section (ConfigError with ``sweep.``-prefixed key paths)."""
    if not raw:
        raise ConfigError(f"{source} has no 'sweep:' section; add one with params and objectives "
                          "(see studies/adni_mci_sweep.yaml)")
    params = raw.get("params")
    for name, spec in (params.items() if isinstance(params, dict) else []):
        if isinstance(spec, dict) and "kind" not in spec:  # pydantic would only say it cannot find the tag
            raise ConfigError(f"{source}: sweep.params.{name} needs 'kind: float', 'kind: int' or "
                              "'kind: categorical'")
    try:
        cfg = SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, SweepConfig, source, prefix="sweep")) from None
    build_sampler(cfg, worker_index=0, taken=0)  # fail on bad sampler options before any trial runs
    build_pruner(cfg)
    return cfg


def sampler_seed(seed: int, worker_index: int, taken: int) -> int:
    """The seed of one worker process: a stable hash of the study's sampler seed, the worker index and
    how many trials had left the queue (running or finished) when the process started.

    A fresh sweep (nothing taken yet) is reproducible; a continued sweep, or a worker joining later,
    starts a new random stream instead of repeating the points drawn before (the count grows with
    every trial a worker takes); workers starting together see the same count and differ by index.
    """
    digest = hashlib.sha256(f"robustmm-sampler:{seed}:{worker_index}:{taken}".encode()).digest()
    return int.from_bytes(digest[:4], "big")  # numpy seeds must be below 2**32


def build_sampler(cfg: SweepConfig, worker_index: int, taken: int) -> optuna.samplers.BaseSampler:
    """The sampler of one worker process; ``taken``: trials of the study no longer waiting when it started."""
    options = dict(cfg.sampler.options)
    seed = None if cfg.sampler.seed is None else sampler_seed(cfg.sampler.seed, worker_index, taken)
    kind = cfg.sampler_kind
    samplers = optuna.samplers
    if kind == "grid":
        from robustmm.tune.space import choice_labels

        space = {name: choice_labels(p) for name, p in cfg.params.items()}
        return _construct(samplers.GridSampler, "sampler", space, seed=seed, **options)
    if kind == "tpe":
        # workers sharing a storage otherwise propose the same point while others are still running
        options.setdefault("constant_liar", True)
    classes = {"tpe": samplers.TPESampler, "random": samplers.RandomSampler, "cmaes": samplers.CmaEsSampler,
               "gp": samplers.GPSampler, "nsga2": samplers.NSGAIISampler, "nsga3": samplers.NSGAIIISampler}
    return _construct(classes[kind], "sampler", seed=seed, **options)


def build_pruner(cfg: SweepConfig) -> optuna.pruners.BasePruner:
    pruners = optuna.pruners
    classes = {"median": pruners.MedianPruner, "percentile": pruners.PercentilePruner,
               "successive_halving": pruners.SuccessiveHalvingPruner, "hyperband": pruners.HyperbandPruner,
               "threshold": pruners.ThresholdPruner}
    kind = cfg.pruner_kind
    if kind == "none":  # options may be inherited from a profile's base; nothing to configure
        return pruners.NopPruner()
    if kind == "patient":
        # options: patience, min_delta, and 'wrapped': the kind of pruner to consult once patience runs out
        options = dict(cfg.pruner.options)
        inner = options.pop("wrapped", None)
        if inner is not None and inner not in classes:
            raise ConfigError(f"sweep.pruner.options.wrapped: '{inner}' is not a pruner kind ({sorted(classes)})")
        wrapped = classes[inner]() if inner is not None else None
        return _construct(pruners.PatientPruner, "pruner", wrapped, **options)
    return _construct(classes[kind], "pruner", **cfg.pruner.options)


def _construct(cls: type, key: str, *args: Any, **kwargs: Any) -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sweep.{key}.options: not valid for Optuna's {cls.__name__}: {exc}") from None

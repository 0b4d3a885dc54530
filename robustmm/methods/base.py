"""The method interface, the registry, and what every method shares.

A method owns its networks and its training stages::

    method = create_method(method_cfg, context)      # options validated against Method.Options
    method.fit(data, trainer)                        # trains (resumes from checkpoints)
    outputs = method.predict(batch)                  # deployment path only

``predict`` returns a dict of tensors that the task adapter understands (``logits`` always;
``score``/``risk`` derived by :class:`robustmm.methods.task.TaskAdapter`).
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np
import torch
from pydantic import ConfigDict, ValidationError

from robustmm.config.loader import command_line_origin, format_validation_error
from robustmm.config.schema import ConfigModel, MethodConfig, ModelConfig, TrainingConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch, ModalitySpec
from robustmm.errors import ConfigError
from robustmm.missing.scenarios import Scenario
from robustmm.models.cache import attached

log = logging.getLogger("robustmm")

_METHODS: dict[str, type["Method"]] = {}


class MethodOptions(ConfigModel):
    """Base of every method's options (unknown keys are errors, and so are inf and nan, which no
    weight, rate or learning rate can take)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass
class MethodContext:
    """What a method may know about the study (never the test labels)."""

    method_id: str
    modalities: dict[str, ModalitySpec]
    task: TaskSpec
    model: ModelConfig
    training: TrainingConfig
    seed: int
    trained: dict[str, "Method"] = field(default_factory=dict)  # methods already fitted in this run


class Method(ABC):
    name: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    #: methods (by registered name) whose fitted instance this method reuses when the study has it
    reuses: ClassVar[tuple[str, ...]] = ()
    #: True when ``predict``'s per-modality encoder outputs depend only on the sample's own input,
    #: whether that modality is present and its feature mask (never on which *other* modalities are
    #: present), so evaluation may encode each subject once and reuse the outputs across scenarios.
    #: A method whose encoders see the availability pattern (e.g. pattern-specific modulation of
    #: encoder features) must leave this False.
    reuses_encoder_outputs: ClassVar[bool] = False

    def __init__(self, options: MethodOptions, context: MethodContext) -> None:
        self.check_setup(options, context.modalities, context.task, context.method_id)
        self.options = options
        self.context = context
        self.device = torch.device("cpu")

    @classmethod
    def check_setup(cls, options: MethodOptions, specs: dict[str, ModalitySpec], task: TaskSpec,
                    method_id: str) -> None:
        """Raise a ConfigError for modalities, a task or options this method cannot be built for
        (nothing is read from the data). Runs from :meth:`check_data` before any method of the study
        trains, and at construction for direct use of the class. Default: nothing to check."""

    @classmethod
    def check_training(cls, options: MethodOptions, training: Any, method_id: str) -> None:
        """Raise a ConfigError for training settings (the study's ``training`` section, with this method's
        options) this method cannot train with. Runs before any data are read. Default: nothing to check."""

    @classmethod
    def check_data(cls, options: MethodOptions, data: Any, method_id: str) -> None:
        """Raise a ConfigError/DataError (naming the option) for data this method cannot train on.
        The study calls it for every method before the first one trains, so a mismatch of a later
        method does not come after the earlier ones' training. Default: :meth:`check_setup` on the
        data's modalities and task; a method that also reads the data extends it."""
        cls.check_setup(options, dict(data.modalities), data.task, method_id)

    @abstractmethod
    def fit(self, data: Any, trainer: Any) -> None:
        """Train every stage (each stage resumes from its own checkpoint)."""

    @abstractmethod
    def predict(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Deployment-path outputs for ``batch`` (already on ``self.device``)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def report_items(self) -> dict[str, Any]:
        """Method-specific facts for the report (mined subsets, parameter fractions, ...)."""
        return {}

    def report_sections(self, data: Any, plots_dir: Path) -> list[tuple[str, str]]:
        """Extra report sections as (title, HTML fragment); figures go to ``plots_dir`` and are
        referenced as ``plots/<file>``."""
        return []

    def eval(self) -> "Method":
        for module in self.modules():
            module.eval()
        return self

    def modules(self) -> list[torch.nn.Module]:
        return [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]

    @contextlib.contextmanager
    def encoder_cache(self, cache: Any) -> Iterator[bool]:
        """Within the block, every network of this method that supports it reuses encoder outputs
        through ``cache`` (an :class:`robustmm.models.cache.EncoderCache`); yields whether any does.
        Does nothing unless the method sets :attr:`reuses_encoder_outputs`."""
        with attached(self.modules() if self.reuses_encoder_outputs else [], cache) as used:
            yield used

    @property
    def upper_bound(self) -> bool:
        """True for a reference that sees inputs the missing scenarios hide (e.g. ITCFN's real-PET upper
        bound): the report shows it but does not rank it against deployable methods."""
        return False

    def deferred_training_seconds(self) -> float:
        """Training done after ``fit`` returned (e.g. models trained when the evaluation first needs them);
        the run's timing.json adds it to the method's training time."""
        return 0.0

    def to(self, device: torch.device) -> "Method":
        self.device = torch.device(device)
        for module in self.modules():
            module.to(self.device)
        return self


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def deco(cls: type[Method]) -> type[Method]:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    return sorted(_METHODS)


def method_class(name: str) -> type[Method]:
    import difflib

    if name not in _METHODS:
        hint = difflib.get_close_matches(name, list(_METHODS), n=1)
        raise ConfigError(f"unknown method '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                          + f" (available: {available_methods()})")
    return _METHODS[name]


def check_methods(methods: list[MethodConfig], data: Any) -> None:
    """Every method's :meth:`Method.check_data` on ``data`` (a DataModule), in study order: what a
    study runs before its first method trains, and ``robustmm data check --study``."""
    for i, cfg in enumerate(methods):
        method_class(cfg.name).check_data(method_options(cfg, f"methods.{i}"), data, cfg.run_id)


def method_options(cfg: MethodConfig, key: str = "methods", source: str | None = None,
                   origins: dict[str, str] | None = None) -> MethodOptions:
    """The validated options of the method ``cfg`` (``key``: its path in the study, ``source``: the
    study file, ``origins``: the key paths set on the command line, for the error)."""
    try:
        cls = method_class(cfg.name)
    except ConfigError as exc:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}'{key}.name': {exc}"
                          + command_line_origin(f"{key}.name", origins or {})) from None
    nested = cfg.options.get("options")
    if isinstance(nested, dict) and "options" not in cls.Options.model_fields:
        where = f"{source}: " if source else ""
        inline = ", ".join(f"{k}: {v}" for k, v in list(nested.items())[:3])
        raise ConfigError(f"{where}'{key}.options': a method's options sit next to its name, not under "
                          f"'options:' (e.g. {{name: {cfg.name}, {inline}}})"
                          + command_line_origin(f"{key}.options", origins or {}))
    try:
        return cls.Options.model_validate(cfg.options)
    except ValidationError as err:
        what = f"{source}: method '{cfg.run_id}'" if source else f"method '{cfg.run_id}'"
        raise ConfigError(format_validation_error(err, cls.Options, what, key, origins)) from None


def create_method(cfg: MethodConfig, context: MethodContext, key: str = "methods") -> Method:
    return method_class(cfg.name)(method_options(cfg, key), context)


@dataclass
class Predictions:
    """Concatenated outputs of one method on one split (and one scenario)."""

    outputs: dict[str, np.ndarray]
    target: Any
    subjects: list[str]
    meta: dict[str, list]
    evaluable: np.ndarray


@torch.no_grad()
def collect_predictions(predict: Callable[[Batch], dict[str, torch.Tensor]], data: Any, split: str,
                        device: torch.device, scenario: Scenario | None = None, seed: int = 0,
                        batch_size: int | None = None, batches: Iterable[Batch] | None = None) -> Predictions:
    """Run ``predict`` over a split, optionally under a missing scenario (deterministic masks).
    ``batches``: the split's batches already loaded (evaluation loads them once for all scenarios)."""
    outs: dict[str, list[np.ndarray]] = {}
    targets, subjects, evaluable = [], [], []
    meta: dict[str, list] = {}
    for batch in (data.loader(split, shuffle=False, batch_size=batch_size) if batches is None else batches):
        if scenario is not None:
            evaluable.append(scenario.evaluable(batch).numpy())
            batch = scenario.apply(batch, data.modalities, seed)
        else:
            evaluable.append(np.ones(batch.size, bool))
        result = predict(batch.to(device))
        for k, v in result.items():
            outs.setdefault(k, []).append(v.detach().float().cpu().numpy())
        targets.append(_to_numpy(batch.target))
        subjects.extend(batch.subjects)
        for k, v in batch.meta.items():
            meta.setdefault(k, []).extend(v)
    return Predictions({k: np.concatenate(v) for k, v in outs.items()}, _concat(targets), subjects, meta,
                       np.concatenate(evaluable))


def _to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.cpu().numpy()
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    return x


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)

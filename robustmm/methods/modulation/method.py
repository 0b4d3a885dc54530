"""The ``modulation`` method: parameter-efficient adaptation of a complete-data network to
missing modalities (docs/protocols/modulation.md; Reza, Prater-Bennette and Asif, TPAMI 2024).

1. Base network: the study's fitted ``complete_only`` network (the method declares
   ``reuses = ("complete_only",)``, so the study trains it first), else the network in
   ``base_checkpoint``, else ``complete_only`` trained here on complete cases as stage ``base``.
   A private copy is frozen; the base network itself is never changed.
2. Modulation (``variant`` ssf, film, bitfit or lora) after the layers of the fusion block(s)
   and the shared trunk (``targets``; the decoder for segmentation), one parameter set per
   availability pattern, chosen per sample from ``batch.present`` (see :mod:`.network`). The
   defaults keep every variant under 1 % of the base network's parameters per pattern on the
   default ADNI model (tests/test_modulation.py checks each).
3. Training: every epoch each training sample gets a pattern from the ``patterns`` scenario
   (default ``random_subsets``: a uniformly drawn non-empty subset of its naturally present
   modalities), its other modalities are removed (the base network's fill stands in for them),
   and the study's task loss trains the parameters of the sample's pattern only.
4. Model selection on the validation split, per pattern: every pattern is evaluated on the
   validation subjects that naturally have it, and keeps the parameters of its own best epoch by
   ``select_on`` (the base network, i.e. the identity, included); early stopping waits until no
   pattern has improved for ``patience`` epochs (see :class:`ModulationTraining`). ``film`` shares
   one generator across patterns, so it keeps one epoch for all of them (best mean over patterns
   on the same metric), or the base network when no epoch beats it.

The report shows, per method, the trainable-parameter fraction (one pattern's parameters, as
the paper counts them, and all patterns together) and the validation score of the base network
and of the modulated one on every pattern.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator
from torch import Tensor, nn

from robustmm.config.loader import format_validation_error, preset_file
from robustmm.config.schema import ConfigModel, RandomSubsetsScenario, ScenarioConfig
from robustmm.data.batch import Batch
from robustmm.io import load_torch
from robustmm.errors import ConfigError
from robustmm.methods.base import Method, MethodContext, MethodOptions, collect_predictions, register_method
from robustmm.methods.baseline import CompleteOnly, CompleteOnlyOptions
from robustmm.methods.modulation.network import ModulatedNetwork
from robustmm.methods.modulation.sites import LayerKind
from robustmm.methods.modulation.variants import Variant
from robustmm.methods.task import TaskAdapter, task_adapter
from robustmm.metrics.paired import higher_is_better, worst_value
from robustmm.missing.scenarios import Scenario, Subset, build_scenario
from robustmm.models.factory import create_model
from robustmm.models.network import FillKind

log = logging.getLogger("robustmm")

DEFAULTS_FILE = preset_file("methods/modulation")
#: stage name (checkpoint file stem) of a base network this method trains itself
BASE_STAGE = "base"
#: threshold and calibration metrics reported per pattern next to the primary one (when the task
#: has them): modulation mostly recalibrates the base network's scores, which moves these more
#: than a rank metric such as the AUC
PATTERN_REPORT_METRICS = ("balanced_accuracy", "brier")


class VariantSettings(ConfigModel):
    """A variant's hyperparameters after the defaults of robustmm/presets/methods/modulation.yaml apply."""

    model_config = ConfigDict(extra="forbid")
    layers: list[LayerKind] = Field(min_length=1)
    #: default network parts (those a network has are used) when the study sets no ``targets``
    targets: list[str] | None = Field(None, min_length=1)
    lr: float | None = Field(None, gt=0)
    rank: int | None = Field(None, ge=1)
    hidden: int | None = Field(None, ge=1)


class ModulationOptions(MethodOptions):
    """Unset (null) options take the variant's value in robustmm/presets/methods/modulation.yaml."""

    variant: Variant = "ssf"
    #: top-level parts of the base network to modulate (every one must exist); null: the variant's
    #: ``targets`` in robustmm/presets/methods/modulation.yaml that the network has (by default its fusion
    #: block(s) and trunk: ``fusion``, ``trunk``; ``fusions``, ``decoder`` for segmentation)
    targets: list[str] | None = Field(None, min_length=1)
    layers: list[LayerKind] | None = Field(None, min_length=1)
    rank: int | None = Field(None, ge=1)
    hidden: int | None = Field(None, ge=1)
    #: how training samples get their availability pattern (a single training scenario)
    patterns: ScenarioConfig = Field(default_factory=lambda: RandomSubsetsScenario(kind="random_subsets"))
    #: a complete_only stage checkpoint (or a network state_dict) of the study's model, used
    #: when the study does not list complete_only
    base_checkpoint: Path | None = None
    #: fill of a base network loaded from base_checkpoint or trained here
    base_fill: FillKind = "zero"
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    #: what each pattern's parameters are selected on, on its validation subjects: the task's
    #: primary metric (default), or the study's training.selection.monitor (``monitor``). The
    #: per-pattern task loss rewards collapsing a pattern the base mis-reads to the class prior
    #: (issue 15: MRI alone, validation loss down while the validation AUC fell 0.44 -> 0.33).
    select_on: Literal["primary", "monitor"] = "primary"

    @model_validator(mode="after")
    def _variant_options(self) -> "ModulationOptions":
        if self.rank is not None and self.variant != "lora":
            raise ValueError(f"'rank' is an option of variant lora, not of {self.variant}")
        if self.hidden is not None and self.variant != "film":
            raise ValueError(f"'hidden' is an option of variant film, not of {self.variant}")
        return self


def resolve_settings(options: ModulationOptions, path: Path = DEFAULTS_FILE) -> VariantSettings:
    """Options given in the study, else the variant's defaults in ``path``."""
    try:
        table = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the modulation defaults {path}: {exc}; restore it from the repository") from None
    if options.variant not in table:
        raise ConfigError(f"{path} has no '{options.variant}' section; add one with {sorted(VariantSettings.model_fields)}")
    given = {k: v for k, v in options.model_dump().items()
             if k in VariantSettings.model_fields and v is not None and k != "targets"}
    try:
        return VariantSettings.model_validate({**table[options.variant], **given})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, VariantSettings, str(path), options.variant)) from None


def load_base_checkpoint(path: Path, context: MethodContext, fill: FillKind) -> nn.Module:
    """The study's network with the weights of ``path``: a trainer stage checkpoint of a
    single-network method (``checkpoints/complete_only/complete_only.pt``), a method state
    (``{"net": ...}``) or a plain network state_dict."""
    where = f"method '{context.method_id}': base_checkpoint {path}"
    if not Path(path).is_file():
        raise ConfigError(f"{where} does not exist; point it at a complete_only checkpoint, e.g. "
                          "runs/<study>/<time>/checkpoints/complete_only/complete_only.pt")
    # load_torch names the file itself after ``what``
    state = load_torch(path, f"method '{context.method_id}': base_checkpoint")  # weights_only: never runs code
    if isinstance(state, dict) and "module" in state:
        if not state.get("complete"):
            raise ConfigError(f"{where} is from a training stage that did not finish (last epoch "
                              f"{state.get('epoch', '?')}); finish that run with --resume first")
        state = {k[len("net."):]: v for k, v in state["module"].items() if k.startswith("net.")}
    elif isinstance(state, dict) and isinstance(state.get("net"), dict):
        state = state["net"]
    net = create_model(context.modalities, context.task, context.model, fill=fill)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{where} does not fit the study's model (missing {sorted(missing)[:5]}, unexpected "
                          f"{sorted(unexpected)[:5]}); use a checkpoint trained with the same model section "
                          "and data, and set base_fill to the fill it was trained with")
    return net


def pattern_validation(predict, data, task: TaskAdapter, device: torch.device, seed: int,
                       patterns: list[tuple[str, ...]]) -> dict[str, dict[str, float]]:
    """Per pattern, the task's metrics and loss on the validation subjects that naturally have
    every modality of the pattern (the others removed)."""
    results: dict[str, dict[str, float]] = {}
    for pattern in patterns:
        name = "+".join(pattern)
        preds = collect_predictions(task.inference(predict), data, "val", device,
                                    Subset(name=name, modalities=tuple(pattern)), seed)
        keep = np.flatnonzero(preds.evaluable)
        if keep.size == 0:
            continue
        metrics = dict(task.metrics(preds.outputs, preds.target, preds.meta, keep))
        target = ({k: np.asarray(v)[keep] for k, v in preds.target.items()} if isinstance(preds.target, dict)
                  else np.asarray(preds.target)[keep])
        metrics["loss"] = task.validation_loss({k: v[keep] for k, v in preds.outputs.items()}, target)
        results[name] = metrics
    return results


def summarize(by_pattern: dict[str, dict[str, float]], primary: str) -> dict[str, float]:
    """Mean over patterns of every metric, plus the primary metric and loss per pattern."""
    keys = sorted({k for metrics in by_pattern.values() for k in metrics})
    out: dict[str, float] = {}
    for k in keys:
        values = np.array([m.get(k, np.nan) for m in by_pattern.values()], dtype=float)
        out[k] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    for name, metrics in by_pattern.items():
        for k in (primary, "loss", *PATTERN_REPORT_METRICS):
            if k in metrics:
                out[f"{k}@{name}"] = float(metrics[k])
    return out


class ModulationTraining(nn.Module):
    """The training module the trainer sees: only the modulation parameters are trainable.

    Per-pattern model selection: every pattern has its own parameters, trained on its own samples
    only, so each pattern keeps the parameters of *its* best validation epoch (by the study's
    monitor on the validation subjects that have the pattern), and the untrained identity (the
    base network, scored before training) is one of the candidates. One shared stopping epoch
    would stop patterns that still improve and keep patterns that already overfit (issue 15: on
    the ADNI study the complete pattern and pet+clinical lost 0.02-0.03 validation AUC at the
    epoch that was best on average). The metric is the task's primary one unless ``select_on``
    is ``monitor`` (then the study's training.selection.monitor). The selected parameters, their scores and epochs are
    buffers, so a trainer checkpoint (and ``--resume``) carries them; the trainer monitors the
    same metric, as the mean over patterns of the selected scores, which changes only when some pattern improves, so
    its early stopping waits ``patience`` epochs without any pattern improving, and its restored
    state holds every pattern's selection, which :meth:`apply_selection` then puts in place.
    FiLM's generator is shared by all patterns, so no pattern can keep an epoch of its own: the
    trainer selects one epoch on the same metric (mean over patterns), and :meth:`beats_base` says
    whether it beat the base network there (else the method goes back to the identity).
    """

    def __init__(self, net: ModulatedNetwork, task: TaskAdapter, context: MethodContext, patterns: Scenario,
                 base_scores: dict[str, dict[str, float]] | None = None, select_on: str = "primary") -> None:
        super().__init__()
        self.net = net
        self.task = task
        self.context = context
        self.patterns = patterns
        monitor = context.training.selection.monitor
        self.monitor = task.primary_metric if select_on == "primary" or monitor == "primary" else monitor
        self.higher_better = higher_is_better(self.monitor)
        self.worst = worst_value(self.monitor)
        self.per_pattern = net.modulation.variant != "film"
        names = ["+".join(p) for p in net.patterns]
        self.pattern_names = names
        #: the base network's (the identity's) score, as the trainer scores an epoch: mean over patterns
        self.base_score = self._score(summarize(base_scores or {}, task.primary_metric))
        #: the metrics of every pattern's selected parameters (a resumed run refills it as patterns improve)
        self.selected_metrics: dict[str, dict[str, float]] = dict(base_scores or {})
        if self.per_pattern:
            start = torch.stack([self._flat(i) for i in range(len(names))])
            scores = [self._score(self.selected_metrics.get(n, {})) for n in names]
            self.register_buffer("selected", start)
            self.register_buffer("selected_score", torch.tensor(scores, dtype=torch.float64))
            self.register_buffer("selected_epoch", torch.full((len(names),), -1, dtype=torch.long))

    def _flat(self, pattern: int) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.net.modulation.pattern_parameters(pattern)]).float()

    def _score(self, metrics: dict[str, float]) -> float:
        value = metrics.get(self.monitor, self.worst)
        return float(value) if np.isfinite(value) else self.worst

    def _better(self, new: float, old: float) -> bool:
        return new > old if self.higher_better else new < old

    def beats_base(self, score: float) -> bool:
        """Does the shared selection's score (the trainer's best) beat the untrained base network?"""
        return self._better(self._score({self.monitor: score}), self.base_score)

    def trainable_parameters(self):
        return self.net.modulation.parameters()

    def training_step(self, batch: Batch, ctx) -> Tensor:
        batch = self.patterns.apply(batch, self.context.modalities, self.context.seed, ctx.epoch)
        return self.task.loss(self.net(batch)["logits"], batch)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.net(batch)["logits"])

    def validation_metrics(self, data, ctx) -> dict[str, float]:
        by_pattern = pattern_validation(self.predict, data, self.task, ctx.device, self.context.seed,
                                        self.net.patterns)
        if not self.per_pattern:
            return summarize(by_pattern, self.task.primary_metric)
        for i, name in enumerate(self.pattern_names):
            if name not in by_pattern:
                continue
            score = self._score(by_pattern[name])
            if self._better(score, float(self.selected_score[i])):
                self.selected[i] = self._flat(i).to(self.selected.device)
                self.selected_score[i] = score
                self.selected_epoch[i] = ctx.epoch
                self.selected_metrics[name] = by_pattern[name]
            elif name not in self.selected_metrics:  # a resumed run: the selection's metrics were not kept
                self.selected_metrics[name] = by_pattern[name]
        return summarize({n: self.selected_metrics[n] for n in self.pattern_names if n in self.selected_metrics},
                         self.task.primary_metric)

    @torch.no_grad()
    def apply_selection(self) -> None:
        """Put every pattern's selected parameters in place (after the trainer restored its state)."""
        if not self.per_pattern:
            return
        for i in range(len(self.pattern_names)):
            params = self.net.modulation.pattern_parameters(i)
            flat = self.selected[i]
            offset = 0
            for p in params:
                p.copy_(flat[offset:offset + p.numel()].view_as(p).to(p.dtype))
                offset += p.numel()


@register_method("modulation")
class Modulation(Method):
    """A frozen complete-data network plus per-pattern feature modulation (module docstring)."""

    Options = ModulationOptions
    reuses = ("complete_only",)

    def __init__(self, options: ModulationOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        self.settings = resolve_settings(options)
        self.task = task_adapter(context.task)
        try:
            self.pattern_scenario = build_scenario(options.patterns, list(context.modalities))
        except ValueError as exc:
            raise ConfigError(f"method '{context.method_id}': patterns: {exc}") from None
        self.net: ModulatedNetwork | None = None
        self.base_source = ""
        self.base_fill: str = options.base_fill
        #: pattern -> validation primary metric of the base network and of the modulated one
        self.validation: dict[str, dict[str, float]] = {}
        #: pattern -> the epoch whose parameters it kept (-1: none beat the base; film: one epoch for all)
        self.selected_epochs: dict[str, int] = {}

    @classmethod
    def check_setup(cls, options: ModulationOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        """The variant's defaults can be read (a missing or broken section is an error)."""
        resolve_settings(options)

    # ------------------------------------------------------------------ building
    def wrap(self, base: nn.Module) -> ModulatedNetwork:
        try:
            return ModulatedNetwork(base, list(self.context.modalities), self.options.variant, list(self.settings.layers),
                                    self.options.targets, rank=self.settings.rank or 4,
                                    film_hidden=self.settings.hidden or 16, default_targets=self.settings.targets)
        except ValueError as exc:
            raise ConfigError(f"method '{self.context.method_id}': {exc}") from None

    def _base_network(self, data, trainer) -> tuple[nn.Module, TaskAdapter | None]:
        if self.options.base_checkpoint is not None:
            self.base_source = f"checkpoint {self.options.base_checkpoint}"
            return load_base_checkpoint(self.options.base_checkpoint, self.context, self.options.base_fill), None
        reused = self.context.trained.get("complete_only")
        if reused is not None:
            self.base_source = "the study's complete_only network"
            self.base_fill = reused.options.fill
            return reused.net, reused.task
        base_context = dataclasses.replace(self.context, method_id=BASE_STAGE)
        method = CompleteOnly(CompleteOnlyOptions(fill=self.options.base_fill), base_context)
        method.fit(data, trainer)
        self.base_source = f"complete_only trained here on complete cases (stage '{BASE_STAGE}')"
        return method.net, method.task

    # ------------------------------------------------------------------ Method
    def fit(self, data, trainer) -> None:
        base, base_task = self._base_network(data, trainer)
        if base_task is not None:
            self.task.load_state_dict(base_task.state_dict())  # e.g. survival time bins of the base head
        else:
            self.task.fit(data)
        self.net = self.wrap(base)
        log.info("%s: %s modulation of %s; %d parameters per pattern (%.3f%% of the base network)",
                 self.context.method_id, self.options.variant, self.base_source,
                 self.net.parameter_counts()["per_pattern"], 100 * self.trainable_fraction())
        self.net.to(trainer.device).eval()
        with torch.no_grad():  # no pattern trained yet: every modulation is the identity
            before = pattern_validation(lambda b: self.task.outputs(self.net(b)["logits"]), data, self.task,
                                        trainer.device, self.context.seed, self.net.patterns)
        module = ModulationTraining(self.net, self.task, self.context, self.pattern_scenario,
                                    base_scores=before, select_on=self.options.select_on).to(trainer.device)
        identity = {k: v.clone() for k, v in self.net.modulation.state_dict().items()}
        result = trainer.fit(module, data, stage=self.context.method_id, epochs=self.options.epochs,
                             lr=self.settings.lr, monitor=module.monitor)
        module.apply_selection()
        primary = self.task.primary_metric
        best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
        if module.per_pattern:
            self.selected_epochs = {name: int(e) for name, e in zip(module.pattern_names, module.selected_epoch.tolist())}
        elif module.beats_base(result.best_score):  # film: one epoch shared by every pattern
            self.selected_epochs = {name: result.best_epoch for name in module.pattern_names}
        else:
            log.info("%s: no epoch beat the base network on validation %s (mean over patterns); keeping the base "
                     "network (identity modulation)", self.context.method_id, module.monitor)
            self.net.modulation.load_state_dict(identity)
            self.selected_epochs = {name: -1 for name in module.pattern_names}
            best = summarize(before, primary)
        shown = [primary, *(k for k in PATTERN_REPORT_METRICS if any(k in m for m in before.values()))]
        self.validation = {name: {"base": metrics.get(primary, float("nan")),
                                  "modulated": best.get(f"{primary}@{name}", float("nan")),
                                  **{f"{k}_base": metrics.get(k, float("nan")) for k in shown[1:]},
                                  **{f"{k}_modulated": best.get(f"{k}@{name}", float("nan")) for k in shown[1:]}}
                           for name, metrics in before.items()}
        self.to(trainer.device)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        if self.net is None:
            raise RuntimeError("modulation: call fit() (or load_state_dict()) before predict()")
        return self.task.outputs(self.net(batch)["logits"])

    def state_dict(self) -> dict[str, Any]:
        return {"net": None if self.net is None else self.net.state_dict(), "task": self.task.state_dict(),
                "base_fill": self.base_fill, "base_source": self.base_source, "validation": self.validation,
                "selected_epochs": self.selected_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_fill = state["base_fill"]
        if self.net is None:
            base = create_model(self.context.modalities, self.context.task, self.context.model, fill=self.base_fill)
            self.net = self.wrap(base).to(self.device)
        self.net.load_state_dict(state["net"])
        self.task.load_state_dict(state["task"])
        self.base_source = state.get("base_source", "")
        self.validation = state.get("validation", {})
        self.selected_epochs = state.get("selected_epochs", {})

    # ------------------------------------------------------------------ report
    def trainable_fraction(self, all_patterns: bool = False) -> float:
        counts = self.net.parameter_counts()
        return counts["total" if all_patterns else "per_pattern"] / counts["base"]

    def report_items(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        counts = self.net.parameter_counts()
        return {
            "variant": self.options.variant,
            "base": self.base_source,
            "targets": self.net.targets,
            "layer_kinds": list(self.settings.layers),
            "modulated_layers": len(self.net.modulation.sites),
            "patterns": len(self.net.patterns),
            "base_parameters": counts["base"],
            "parameters_per_pattern": counts["per_pattern"],
            "parameters_all_patterns": counts["total"],
            "trainable_fraction": self.trainable_fraction(),
            "trainable_fraction_all_patterns": self.trainable_fraction(all_patterns=True),
            f"validation_{self.task.primary_metric}": self.validation,
            "selected_epochs": self.selected_epochs,
        }

    def report_sections(self, data, plots_dir: Path) -> list[tuple[str, str]]:
        items = self.report_items()
        if not items:
            return []
        primary = self.task.primary_metric
        facts = [("variant", items["variant"]), ("base network", items["base"]),
                 ("modulated", f"{items['modulated_layers']} layers ({', '.join(items['layer_kinds'])}) in "
                               f"{', '.join(items['targets'])}"),
                 ("parameters per pattern", f"{items['parameters_per_pattern']:,} = "
                                            f"{100 * items['trainable_fraction']:.3f}% of {items['base_parameters']:,}"),
                 (f"all {items['patterns']} patterns", f"{items['parameters_all_patterns']:,} = "
                                                       f"{100 * items['trainable_fraction_all_patterns']:.3f}%")]
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
        extra = [k for k in PATTERN_REPORT_METRICS if any(f"{k}_base" in v for v in self.validation.values())]
        head = "".join(f"<th>{html.escape(k)} base</th><th>{html.escape(k)} modulated</th>" for k in extra)
        scores = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{v['base']:.3f}</td><td>{v['modulated']:.3f}</td>"
            + "".join(f"<td>{v.get(k + '_base', float('nan')):.3f}</td><td>{v.get(k + '_modulated', float('nan')):.3f}"
                      f"</td>" for k in extra) + "</tr>"
            for name, v in self.validation.items())
        body = (f"<table>{rows}</table><p>Validation {html.escape(primary)} per availability pattern, with the "
                f"threshold and calibration metrics {', '.join(extra) or '(none for this task)'} (Brier: lower is "
                f"better) (model selection split; test results are in the tables above):</p><table><tr>"
                f"<th>pattern</th><th>{html.escape(primary)} base</th><th>{html.escape(primary)} modulated</th>"
                f"{head}</tr>{scores}</table>")
        return [(f"Feature modulation: {self.context.method_id}", body)]

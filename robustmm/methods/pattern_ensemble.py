"""``pattern_ensemble``: one dedicated model per availability pattern — the strong baseline of the
missing-modality literature ("pattern submodels").

A *pattern* is the set of modalities present for a sample. The model of pattern P sees only
P's modalities and is trained on the training subjects that have every modality of P (their
other modalities are ignored); its early stopping (network base) uses the validation subjects
that have P, with only P's modalities. Test samples are routed to the model of their own
pattern. Options:

* ``base``: ``classical`` (penalized Cox / logistic / ridge, :mod:`robustmm.methods.classical`)
  or ``network`` (the study's network, trained like ``complete_only`` on P's modalities).
* ``patterns``:
  ``test`` (default) — a model is trained the first time a pattern is met when predicting, so
  there is exactly one model per pattern seen at test time (and none for patterns never asked
  for); ``training`` — at ``fit``, one model per distinct natural availability pattern of the
  training subjects; a pattern met later that has no model then gets one on first use.

A pattern that no training subject has completely gets the model of its largest sub-pattern that
some have (logged, and noted in the report items). A sample with nothing present goes to the
model of all modalities (every input filled). The
report items give the cost: number of models, the training subjects and seconds per model, and
the total training time.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from robustmm.config.schema import SubsetScenario
from robustmm.data.batch import Batch
from robustmm.errors import DataError
from robustmm.methods.base import Method, MethodContext, MethodOptions, collect_predictions, register_method
from robustmm.methods.baseline import SupervisedModule
from robustmm.methods.classical import ClassicalModel, ClassicalOptions, refuse_task, train_batches
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import build_scenario
from robustmm.models.factory import create_model
from robustmm.models.network import input_means

log = logging.getLogger("robustmm")

Pattern = tuple[str, ...]


class PatternEnsembleOptions(MethodOptions):
    base: Literal["classical", "network"] = "classical"
    patterns: Literal["test", "training"] = "test"
    #: options of the classical base (ignored with ``base: network``)
    classical: ClassicalOptions = Field(default_factory=ClassicalOptions)
    #: network base: missing-input fill, epochs and learning rate (default: the study's training)
    fill: Literal["zero", "mean", "learned"] = "zero"
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)


class _PatternModule(SupervisedModule):
    """A network trained and validated on exactly one pattern's modalities."""

    validates_under_scenarios = False  # one pattern's network: another scenario's masks would be meaningless

    def validation_metrics(self, data, ctx) -> dict[str, float]:
        preds = collect_predictions(self.task.inference(self.predict), data, "val", ctx.device, self.dropout,
                                    self.context.seed)
        metrics = self.task.metrics(preds.outputs, preds.target, preds.meta)
        metrics["loss"] = self.task.validation_loss(preds.outputs, preds.target)
        return metrics


def pattern_name(pattern: Pattern) -> str:
    return "+".join(pattern) if pattern else "(none)"


@register_method("pattern_ensemble")
class PatternEnsemble(Method):
    """One model per availability pattern (see the module docstring)."""

    Options = PatternEnsembleOptions

    def __init__(self, options: PatternEnsembleOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        self.task = task_adapter(context.task)
        self.models: dict[Pattern, Any] = {}
        self.costs: dict[Pattern, dict[str, Any]] = {}
        self._data = None
        self._trainer = None
        self._means = None
        self._fitting = False

    @classmethod
    def check_setup(cls, options: PatternEnsembleOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        refuse_task("pattern_ensemble", task, method_id)

    # ------------------------------------------------------------------ training
    def fit(self, data, trainer) -> None:
        self._data, self._trainer = data, trainer
        self.task.fit(data)
        if self.options.base == "network" and self.options.fill == "mean":
            self._means = input_means(data.loader("train"), data.modalities)
        if self.options.patterns == "training":
            self._fitting = True
            try:
                for pattern in self.training_patterns(data):
                    self.model_for(pattern)
            finally:
                self._fitting = False

    def deferred_training_seconds(self) -> float:
        """Training time spent after ``fit``: models of patterns first met during the evaluation."""
        return round(sum(c["seconds"] for c in self.costs.values() if c.get("deferred")), 2)

    def training_patterns(self, data) -> list[Pattern]:
        """Distinct natural availability patterns of the training subjects, most frequent first."""
        presence = data.dataset.natural_presence()
        idx = data.indices("train")
        names = list(data.modalities)
        seen: dict[Pattern, int] = {}
        for i in idx:
            p = tuple(m for m in names if presence[m][i])
            if p:
                seen[p] = seen.get(p, 0) + 1
        return sorted(seen, key=lambda p: (-seen[p], p))

    def _restricted(self, pattern: Pattern):
        """The data module whose train/val splits keep the subjects that have every modality of
        ``pattern`` (the test split is untouched and never read here)."""
        import copy

        from robustmm.data.datamodule import Splits

        data = self._data
        presence = data.dataset.natural_presence()
        has = np.logical_and.reduce([np.asarray(presence[m], bool) for m in pattern])
        view = copy.copy(data)
        view.splits = Splits(data.splits.train[has[data.splits.train]], data.splits.val[has[data.splits.val]],
                             data.splits.test)
        if len(view.splits.train) == 0:
            raise DataError(f"pattern_ensemble: no training subject has every modality of {pattern_name(pattern)}; "
                            f"no model can be trained for that pattern")
        return view

    def _restricted_size(self, pattern: Pattern) -> int:
        presence = self._data.dataset.natural_presence()
        has = np.logical_and.reduce([np.asarray(presence[m], bool) for m in pattern])
        return int(has[self._data.splits.train].sum())

    def model_for(self, pattern: Pattern):
        """The model of ``pattern``, trained on first use."""
        if not pattern:
            pattern = tuple(self.context.modalities)
        if pattern in self.models:
            return self.models[pattern]
        if self._data is None:
            raise RuntimeError(f"pattern_ensemble: no model for pattern {pattern_name(pattern)} and no training data "
                               f"(call fit() first)")
        try:
            view = self._restricted(pattern)
        except DataError:
            # no training subject has the whole pattern: use the largest smaller pattern that has some
            import itertools

            for k in range(len(pattern) - 1, 0, -1):
                for sub in itertools.combinations(pattern, k):
                    if self._restricted_size(sub):
                        log.warning("pattern_ensemble: no training subject has %s; using the model of %s",
                                    pattern_name(pattern), pattern_name(sub))
                        self.models[pattern] = self.model_for(sub)
                        self.costs[pattern] = {"same_model_as": pattern_name(sub), "seconds": 0.0}
                        return self.models[pattern]
            raise
        t0 = time.time()
        if self.options.base == "classical":
            specs = {m: self.context.modalities[m] for m in pattern}
            model = ClassicalModel(specs, self.task, self.options.classical, self.context.seed)
            model.fit_batches(train_batches(view))
        else:
            model = self._fit_network(pattern, view)
        seconds = round(time.time() - t0, 2)
        self.models[pattern] = model
        self.costs[pattern] = {"training_subjects": int(len(view.splits.train)),
                               "validation_subjects": int(len(view.splits.val)), "seconds": seconds,
                               "deferred": not self._fitting}
        log.info("pattern_ensemble: model %d for %s (%d training subjects, %.1f s)", len(self.models),
                 pattern_name(pattern), len(view.splits.train), seconds)
        return model

    def _fit_network(self, pattern: Pattern, view):
        ctx = self.context
        net = create_model(ctx.modalities, ctx.task, ctx.model, fill=self.options.fill)
        if self._means is not None:
            net.fill.set_means(self._means)
        scenario = build_scenario(SubsetScenario(kind="subset", name=pattern_name(pattern), modalities=list(pattern)),
                                  list(ctx.modalities))
        module = _PatternModule(net, self.task, ctx, scenario)
        with torch.enable_grad():
            self._trainer.fit(module, view, stage=f"{ctx.method_id}.{pattern_name(pattern)}",
                              epochs=self.options.epochs, lr=self.options.lr)
        net.to(self.device).eval()
        return net

    # ------------------------------------------------------------------ prediction
    def _predict_one(self, model, batch: Batch) -> dict[str, Tensor]:
        if isinstance(model, ClassicalModel):
            return model.predict(batch)
        return self.task.outputs(model(batch.to(self.device))["logits"])

    @torch.no_grad()
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        names = list(self.context.modalities)
        present = {m: batch.present[m].detach().cpu().bool() for m in names}
        patterns = [tuple(m for m in names if present[m][i]) for i in range(batch.size)]
        out: dict[str, Tensor] = {}
        device = next(iter(batch.present.values())).device
        for pattern in dict.fromkeys(patterns):
            rows = torch.as_tensor([i for i, p in enumerate(patterns) if p == pattern])
            part = self._predict_one(self.model_for(pattern), batch.select(rows))
            for k, v in part.items():
                v = v.detach().to(device)
                if k not in out:
                    out[k] = torch.zeros((batch.size, *v.shape[1:]), dtype=v.dtype, device=device)
                out[k][rows.to(device)] = v
        return out

    # ------------------------------------------------------------------ report and state
    def report_items(self) -> dict[str, Any]:
        trained = [c for c in self.costs.values() if "same_model_as" not in c]
        return {"base": self.options.base, "patterns_mode": self.options.patterns, "models": len(trained),
                "training_seconds": round(sum(c["seconds"] for c in self.costs.values()), 2),
                "per_pattern": {pattern_name(p): c for p, c in self.costs.items()}}

    def modules(self) -> list[torch.nn.Module]:
        unique = {id(m): m for m in self.models.values() if isinstance(m, torch.nn.Module)}
        return list(unique.values())

    def state_dict(self) -> dict[str, Any]:
        return {"models": {p: (m.state_dict() if isinstance(m, torch.nn.Module) else m) for p, m in self.models.items()},
                "costs": dict(self.costs), "task": self.task.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task.load_state_dict(state["task"])
        self.costs = dict(state["costs"])
        self.models = {}
        for p, m in state["models"].items():
            if isinstance(m, ClassicalModel):
                m.task = self.task
                self.models[p] = m
            else:
                net = create_model(self.context.modalities, self.context.task, self.context.model,
                                   fill=self.options.fill)
                net.load_state_dict(m)
                self.models[p] = net.to(self.device).eval()

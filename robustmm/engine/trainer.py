"""The fit loop: optimizer and schedule, devices and AMP, early stopping, checkpoints, resume.

A method hands the trainer a *training module*: an ``nn.Module`` with

* ``training_step(batch, ctx) -> Tensor | (Tensor, dict)``: the loss of one batch;
* ``validation_metrics(data, ctx) -> dict[str, float]``: metrics on the validation split
  (must contain the monitored metric);

and optionally ``trainable_parameters()``, ``on_epoch_start(ctx, data)``, ``extra_state()`` /
``load_extra_state(state)`` (e.g. a mined weak modality subset) and ``monitor`` / ``monitor_mode``
attributes: the metric used when the study's ``training.selection.monitor`` is ``primary``, and
``validates_under_scenarios = True`` when ``validation_metrics`` may also be called on a
:class:`~robustmm.engine.selection.ScenarioView` (``ctx.scenario`` names the scenario; side effects
such as mining belong to the natural call, where it is None) for ``training.selection.scenarios``.
``reuses_encoder_outputs = True`` (as on :class:`~robustmm.methods.base.Method`: encoder outputs
depend only on each sample's own input) lets every pass of one validation round share an
:class:`~robustmm.models.cache.EncoderCache`, so the scenario passes do not re-run the encoders.
Which epoch is restored follows the study's selection policy (robustmm.engine.selection); each
fit appends a record of it to ``Trainer.selections``. A module that runs optimizer steps of its
own reports them with ``ctx.count_optimizer_steps(n)`` so that step budgets count them.

Every epoch ends with an atomic checkpoint; ``fit`` on an existing checkpoint continues where it
stopped and reaches the same result as an uninterrupted run (epoch-seeded RNG and shuffling).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from robustmm.config.schema import TrainingConfig
from robustmm.engine import distributed
from robustmm.engine.fastpath import DeviceCohort, LossMeter, configure_backends, prepare_network, to_device
from robustmm.engine.fingerprint import check_fingerprint, make_fingerprint
from robustmm.engine.selection import (MINIMIZED, describe, meetable, resolve_policy, scenario_key,
                                      scenario_metrics, validation_scenarios)
from robustmm.errors import CheckpointError, ConfigError
from robustmm.io import load_torch, save_torch_atomic, to_safe
from robustmm.missing.scenarios import Scenario
from robustmm.models.cache import EncoderCache, attached
from robustmm.parallel import apply_threads

log = logging.getLogger("robustmm")

__all__ = ["MINIMIZED", "Trainer", "TrainerCallback", "StepContext", "FitResult", "stable_seed", "resolve_device"]


class TrainerCallback(Protocol):
    def on_validation_end(self, stage: str, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class StepContext:
    epoch: int
    step: int
    device: torch.device
    seed: int
    stage: str
    num_epochs: int
    reported_steps: int = 0
    #: True when the trainer already called the module's ``prepare_batch`` (CPU-side masks)
    prepared: bool = False
    #: during validation: the selection scenario the data are under (None: each subject's own modalities)
    scenario: str | None = None

    def count_optimizer_steps(self, n: int = 1) -> None:
        """A module that steps an optimizer of its own reports it here (selection.steps counts it)."""
        self.reported_steps += int(n)


@dataclass
class FitResult:
    stage: str
    epochs_run: int
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    selection: dict[str, Any] = field(default_factory=dict)


def stable_seed(*keys: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(keys).encode(), digest_size=8).digest(), "little") % (2**31)


def resolve_device(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(kind)


class Trainer:
    def __init__(self, cfg: TrainingConfig, checkpoint_dir: Path, seed: int, progress: bool = True,
                 callbacks: list[TrainerCallback] | None = None, fingerprint: dict[str, Any] | None = None,
                 selection_scenarios: list[Scenario] | None = None) -> None:
        """``fingerprint``: what this trainer's checkpoints belong to, ``{"method": id, "study": hash}``
        (see :mod:`robustmm.engine.fingerprint`); checked on resume. ``selection_scenarios``: those of
        ``training.selection.scenarios`` (:func:`robustmm.engine.selection.validation_scenarios`); when not
        given, a list in the config is built from each stage's data and ``evaluation`` is an error."""
        self.cfg = cfg
        self.selection_scenarios = None if selection_scenarios is None else list(selection_scenarios)
        self.fingerprint = dict(fingerprint or {})
        self.checkpoint_dir = Path(checkpoint_dir)
        self.seed = seed
        self.progress = progress
        self.callbacks = list(callbacks or [])
        #: one record per fitted stage: restored epoch and why (robustmm.engine.selection)
        self.selections: list[dict[str, Any]] = []
        self.device = resolve_device(cfg.device)
        apply_threads(cfg.threads)  # never more than this process's share of the cores
        configure_backends(cfg.deterministic, self.device)

    # ------------------------------------------------------------------ helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.cfg.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def _schedule(self, epochs: int, kind: str) -> Callable[[int], float]:
        warm = min(self.cfg.warmup_epochs, max(epochs - 1, 0))

        def factor(epoch: int) -> float:
            if epoch < warm:
                return (epoch + 1) / (warm + 1)
            if kind == "none":
                return 1.0
            progress = (epoch - warm) / max(epochs - warm, 1)
            return 0.5 * (1 + math.cos(math.pi * progress))

        return factor

    def checkpoint_path(self, stage: str) -> Path:
        return self.checkpoint_dir / f"{stage}.pt"

    def load_checkpoint(self, stage: str, map_location: Any = "cpu") -> dict[str, Any]:
        """The checkpoint of ``stage``, read safely (weights_only) and checked against the fingerprint."""
        path = self.checkpoint_path(stage)
        ckpt = load_torch(path, f"checkpoint of stage '{stage}'", map_location=map_location)
        if not isinstance(ckpt, dict) or "module" not in ckpt:
            raise CheckpointError(f"checkpoint {path} is not a robustmm training checkpoint; delete it to train "
                                  f"stage '{stage}' again")
        check_fingerprint(ckpt, self.fingerprint, stage, str(path))
        return ckpt

    def is_complete(self, stage: str) -> bool:
        path = self.checkpoint_path(stage)
        return path.is_file() and bool(self.load_checkpoint(stage).get("complete"))

    # ------------------------------------------------------------------ fit
    def fit(self, module: nn.Module, data: Any, stage: str, epochs: int | None = None, lr: float | None = None,
            monitor: str | None = None, min_epochs: int | None = None, patience: int | None = None,
            random_stream: str | None = None, lr_schedule: str | None = None) -> FitResult:
        """Train ``module`` on ``data`` under the study's selection policy. ``monitor`` / ``min_epochs`` /
        ``patience`` override the policy for this stage, ``lr_schedule`` the study's learning-rate schedule
        (``cosine`` or ``none``); ``random_stream`` names the stage whose per-epoch torch
        seeds this one uses (default: its own), for common random numbers between methods."""
        per_epoch = None
        if self.cfg.selection.steps is not None:
            try:
                per_epoch = len(data.loader("train", shuffle=True, epoch=0))
            except TypeError:
                per_epoch = None
        configured = self._configured_scenarios(module, data, monitor)
        scenarios = meetable(configured, data)  # this stage's validation split may be narrower than the study's
        policy = resolve_policy(self.cfg.selection, module, epochs or self.cfg.epochs, monitor, per_epoch, min_epochs,
                                patience, scenarios)
        if configured and not scenarios:
            policy = dataclasses.replace(policy, scenarios_note="no validation subject of this stage is evaluable "
                                                                "under any of them")
        epochs, monitor = policy.epochs, policy.monitor
        warned_not_finite = False
        module.to(self.device)
        prepare_network(module, self.cfg.channels_last, self.cfg.compile)
        dinfo = distributed.info()
        ddp = distributed.wrap(module, self.device) if dinfo.enabled else None
        params = [p for p in (module.trainable_parameters() if hasattr(module, "trainable_parameters")
                              else module.parameters()) if p.requires_grad]
        usage = distributed.GlobalUsage(params) if ddp is not None else None
        optimizer = torch.optim.AdamW(params, lr=lr or self.cfg.lr, weight_decay=self.cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._schedule(epochs, lr_schedule or self.cfg.scheduler))
        use_scaler = self.device.type == "cuda" and self.cfg.amp and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

        state = {"epoch": -1, "best_score": None, "best_epoch": -1, "best_state": None, "bad_epochs": 0,
                 "history": [], "seconds": 0.0, "steps": 0, "selection": None}
        path = self.checkpoint_path(stage)
        if path.is_file():
            ckpt = self.load_checkpoint(stage, map_location=self.device)
            try:
                module.load_state_dict(ckpt["module"])
            except RuntimeError as exc:  # shapes or names differ
                raise CheckpointError(f"checkpoint {path} does not fit stage '{stage}' of this run "
                                      f"({str(exc).splitlines()[0]}); delete it to train the stage again") from None
            if hasattr(module, "load_extra_state"):
                module.load_extra_state(ckpt.get("extra", {}))
            self._restore_random_state(ckpt)
            if ckpt.get("complete"):
                log.info("%s: already trained (checkpoint %s), skipping", stage, path)
                ckpt.setdefault("selection", describe(stage, policy, {**state, **ckpt}, "epochs").to_dict())
                self.selections.append(ckpt["selection"])
                if usage is not None:
                    usage.close()
                return self._result(stage, ckpt)
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            state.update({k: ckpt[k] for k in state if k in ckpt})
            log.info("%s: resuming after epoch %d (epochs count from 0) from %s", stage, state["epoch"], path)

        stopped = "epochs"
        first_epoch = state["epoch"] + 1
        # killed right after the last epoch: say why it stopped as the uninterrupted run does (a budget run
        # ends with "steps" even when skipped batches left it unspent)
        if policy.steps is not None and (state["steps"] >= policy.steps or first_epoch >= epochs):
            stopped, first_epoch = "steps", epochs
        elif policy.steps is None and state["bad_epochs"] >= policy.patience:
            stopped, first_epoch = "early", epochs
        cohort = self._device_cohort(data)
        bar = tqdm(range(first_epoch, epochs), desc=stage, disable=not (self.progress and dinfo.is_main),
                   leave=False)
        for epoch in bar:
            t0 = time.time()
            torch.manual_seed(stable_seed(self.seed, random_stream or stage, epoch))
            ctx = StepContext(epoch, 0, self.device, self.seed, stage, epochs)
            if hasattr(module, "on_epoch_start"):
                module.on_epoch_start(ctx, data)
            module.train()
            meter = LossMeter(self.device)
            budget_spent = False
            batches, weights = self._train_batches(data, epoch, dinfo, cohort, stage)
            for step, batch in enumerate(batches):
                ctx.step = step
                if hasattr(module, "prepare_batch"):  # masks drawn on the CPU, before the copy
                    batch, ctx.prepared = module.prepare_batch(batch, ctx), True
                batch = to_device(batch, self.device, self.cfg.channels_last)
                with self.autocast():
                    out = ddp(batch, ctx) if ddp is not None else module.training_step(batch, ctx)
                loss, _ = out if isinstance(out, tuple) else (out, {})
                if loss is None:
                    continue
                if weights is not None:  # this rank's share of the global batch (DDP averages ranks)
                    loss = loss * weights[step]
                # weighted, so the mean over ranks of the meter is the global batches' mean loss (one process's),
                # not an unweighted mean over slices of different sizes
                meter.add(loss, step)
                if self.device.type != "cuda":  # free on the CPU: stop before a NaN step
                    meter.check(stage, epoch)
                optimizer.zero_grad(set_to_none=True)
                if usage is not None:
                    usage.reset()
                scaler.scale(loss).backward()
                if usage is not None:
                    usage.apply()
                if self.cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                state["steps"] += 1 + ctx.reported_steps
                ctx.reported_steps = 0
                if policy.steps is not None and state["steps"] >= policy.steps:
                    budget_spent = True
                    break
            meter.check(stage, epoch)
            scheduler.step()
            module.eval()
            # one cache per validation round: the weights are fixed until the next training epoch
            cache = EncoderCache() if getattr(module, "reuses_encoder_outputs", False) else None
            with torch.no_grad(), self.autocast(), attached([module], cache):
                metrics = dict(module.validation_metrics(data, ctx))
                if monitor not in metrics:
                    raise ConfigError(f"{stage}: validation metrics {sorted(metrics)} lack the monitored "
                                      f"'{monitor}'; set training.selection.monitor to one of them")
                if policy.scenarios:
                    metrics.update(scenario_metrics(module, data, ctx, scenarios, monitor, self.seed, metrics))
                    if not math.isfinite(metrics[policy.key]) and not warned_not_finite:
                        warned_not_finite = True
                        log.warning("%s epoch %d: validation %s is not finite under %s, so the mean over the "
                                    "selection scenarios is not either and cannot be selected", stage, epoch,
                                    monitor, [s.name for s in scenarios
                                              if not math.isfinite(metrics[scenario_key(monitor, s.name)])])
            metrics["train_loss"] = distributed.mean_over_ranks(meter.mean())
            metrics = distributed.broadcast(metrics)  # rank 0 decides early stopping for every rank
            if dinfo.enabled and hasattr(module, "extra_state"):
                # and what the module keeps (e.g. MMANet's MAD weight, set from its own slice's losses), as its
                # checkpoint does: ranks train one objective, and a resumed run the uninterrupted run's
                extra = distributed.broadcast(module.extra_state())
                if not dinfo.is_main:
                    module.load_extra_state(extra)
            score = metrics[policy.key]
            improved = policy.eligible(epoch) and policy.better(score, state["best_score"])
            if improved:
                state.update(best_score=score, best_epoch=epoch, bad_epochs=0,
                             best_state={k: v.detach().cpu().clone() for k, v in module.state_dict().items()})
            elif policy.eligible(epoch):
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            state["seconds"] += time.time() - t0
            state["history"].append({"epoch": epoch, **metrics})
            bar.set_postfix({"train_loss": f"{metrics['train_loss']:.3f}", f"val_{policy.key}": f"{score:.3f}"})
            log.info("%s epoch %d: train_loss %.4f, val %s %.4f%s", stage, epoch, metrics["train_loss"], policy.key,
                     score, " (best)" if improved else "")
            stop = budget_spent or (policy.steps is None and state["bad_epochs"] >= policy.patience)
            if stop:
                stopped = "steps" if budget_spent else "early"
            elif policy.steps is not None and epoch + 1 >= epochs:
                stopped = "steps"
            if dinfo.is_main:
                self._save(path, module, optimizer, scheduler, state, complete=False)
            for cb in self.callbacks:
                cb.on_validation_end(stage, epoch, metrics)
            if stop:
                log.info("%s: early stop at epoch %d (best %s %.4f at epoch %d)", stage, epoch, policy.key,
                         state["best_score"], state["best_epoch"])
                break
        if state["best_state"] is not None:
            module.load_state_dict(state["best_state"])
        state["selection"] = describe(stage, policy, state, stopped).to_dict()
        self.selections.append(state["selection"])
        log.info("%s: restored epoch %d: %s", stage, state["best_epoch"], state["selection"]["reason"])
        if dinfo.is_main:
            self._save(path, module, optimizer, scheduler, state, complete=True)
        if usage is not None:
            usage.close()
        distributed.barrier()
        return self._result(stage, state)

    def _configured_scenarios(self, module: nn.Module, data: Any, monitor: str | None) -> list[Scenario]:
        """The selection scenarios given to the trainer, else those the config lists (built from ``data``)."""
        if self.selection_scenarios is not None:
            return self.selection_scenarios
        choice = self.cfg.selection.scenarios
        if choice == "natural":
            return []
        if choice == "evaluation":
            if monitor is None and getattr(module, "validates_under_scenarios", False):
                raise ConfigError("training.selection.scenarios: 'evaluation' needs the study's evaluation "
                                  "scenarios; a Trainer built outside a study takes them as selection_scenarios= "
                                  "(robustmm.engine.selection.validation_scenarios), or list the scenarios instead")
            return []
        return validation_scenarios(choice, [], data)

    def _device_cohort(self, data: Any) -> DeviceCohort | None:
        """The training split on the device (``training.cohort_on_device``) when it fits."""
        if not self.cfg.cohort_on_device or self.device.type != "cuda" or not hasattr(data, "full_batch"):
            return None
        need = DeviceCohort.nbytes(data, "train")
        free, _ = torch.cuda.mem_get_info(self.device)
        if need > 0.5 * free:
            log.warning("training.cohort_on_device: the training split (%.1f GB) does not fit in half of the free "
                        "device memory (%.1f GB); loading batches from the host instead", need / 1e9, free / 1e9)
            return None
        return DeviceCohort(data, "train", self.device, self.cfg.channels_last)

    def _train_batches(self, data: Any, epoch: int, dinfo, cohort: DeviceCohort | None, stage: str):
        """This epoch's training batches (this rank's share under DDP) and their loss weights."""
        if dinfo.enabled or cohort is not None:  # index lists in the single-process loader's order
            loader = data.loader("train", shuffle=True, epoch=epoch, shard=(dinfo.world, dinfo.rank))
            if len(loader.batch_sampler) == 0 and len(data.indices("train")) > 0:  # else it would train no step
                raise ConfigError(f"{stage}: its training split has {len(data.indices('train'))} samples, fewer than "
                                  f"the {dinfo.world} processes, so no process gets a sample; start fewer processes")
            weights = loader.batch_sampler.weights if dinfo.enabled else None
            if cohort is not None:
                return cohort.batches(loader.batch_sampler.parts), weights
            return loader, weights
        return data.loader("train", shuffle=True, epoch=epoch), None

    def _save(self, path: Path, module, optimizer, scheduler, state: dict, complete: bool) -> None:
        extra = module.extra_state() if hasattr(module, "extra_state") else {}
        ckpt = to_safe({"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "extra": extra, "complete": complete, **state})
        ckpt["fingerprint"] = make_fingerprint(self.fingerprint, path.stem, ckpt["module"], ckpt.get("best_state"))
        ckpt["random_state"] = self._random_state()
        save_torch_atomic(ckpt, path)

    def _random_state(self) -> dict[str, torch.Tensor]:
        """The torch random generators (CPU, and the training device's) as they are after this epoch."""
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore_random_state(self, ckpt: dict[str, Any]) -> None:
        """Put the random generators back where the checkpoint's epoch left them. Each epoch reseeds, but
        what follows a stage does not (the next stage's initial weights, a pattern model trained later):
        without this, a resume that skips finished epochs draws other numbers there than the uninterrupted run."""
        state = ckpt.get("random_state") or {}  # absent from checkpoints of earlier versions
        if "cpu" in state:
            torch.set_rng_state(state["cpu"].cpu())
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"].cpu(), self.device)

    @staticmethod
    def _result(stage: str, s: dict) -> FitResult:
        score = s["best_score"]
        return FitResult(stage, s["epoch"] + 1, s["best_epoch"], float("nan") if score is None else float(score),
                         list(s["history"]), float(s.get("seconds", 0.0)), dict(s.get("selection") or {}))

"""``itcfn``: MRI -> PET generation for subjects without PET, and the triple-modal co-attention
classifier (docs/protocols/itcfn.md).

Variants of one method (give each an ``id:`` in the study):

* ``pet_fill: generated`` (default): a stage-1 generator (see ``generator.py``) supplies the PET
  of every subject whose PET is absent, naturally or by a missing scenario, in training and at
  inference (rows whose MRI is absent too get zeros);
* ``pet_fill: zero`` / ``mean``: the absent PET volume is zeros / the training-set mean PET;
* ``use_pet: false``: MRI + clinical only, a network that never sees PET;
* ``upper_bound: true``: the complete-data upper bound. Trained on subjects with real PET only,
  and at evaluation it reads the real PET of every subject who has one, *even where the missing
  scenario hides it* (subjects without any PET get ``pet_fill``). Not a deployable model: it is
  the reference line of the missing-PET curve.

Training hides PET for a further ``pet_dropout`` fraction of training subjects (drawn per epoch
by the missing engine), so every variant learns to work with its stand-in. Loss: focal loss plus
the SDM alignment terms of the spec, computed only over rows where both modalities have a real
or generated input (a zero- or mean-filled PET carries nothing to align).
"""

from __future__ import annotations

import copy
import html
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from robustmm.config.schema import ModalityRateScenario
from robustmm.data.batch import Batch
from robustmm.data.datamodule import Splits
from robustmm.errors import ConfigError
from robustmm.losses import focal_loss, sdm_loss
from robustmm.methods.base import Method, MethodContext, MethodOptions, collect_predictions, register_method
from robustmm.methods.itcfn.generator import (
    GeneratorLossWeights,
    GeneratorTraining,
    PetGenerator,
    build_discriminator,
    fit_linear_rescale,
    generation_quality,
    mid_slice_figure,
    offline_perceptual_loss,
    quality_table_html,
)
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import build_scenario
from robustmm.models.itcfn import ITCFNNet
from robustmm.models.network import input_means
from robustmm.text import counted, form

log = logging.getLogger("robustmm")

#: test subjects shown in the generated-PET figure
FIGURE_SUBJECTS = 4


class GeneratorOptions(MethodOptions):
    """The MRI -> PET translator (MONAI VQ-VAE + patch discriminator) and its training stage."""

    channels: tuple[int, int] = (16, 32)
    res_layers: int = Field(1, ge=1)
    codebook_size: int = Field(1024, ge=2)
    codebook_dim: int = Field(32, ge=1)
    subject_offset: bool = True  # the subject's PET level read out from the whole MRI (ridge, after the VQ-VAE)
    centre_mri: bool = True  # the VQ-VAE sees MRI minus the training-set mean MRI
    # The VQ-VAE sits at the template for several hundred Adam steps before it follows its input
    # (163 pairs, contrast-0.2 cohort: ~700 steps at a constant rate, ~2x later under cosine decay;
    # benchmarks/itcfn_diagnosis/README.md, sixth round), so the stage runs all its epochs (no early
    # stopping), keeps the epoch with the best validation MAE, and uses a constant rate like the reference.
    epochs: int = Field(60, ge=1)
    lr_schedule: Literal["none", "cosine"] = "none"
    # 2e-3 collapsed the VQ-VAE within 5 Adam steps (encoder outputs moved off the codebook scale,
    # then every latent took one code: 1 of 1024 codes used, identical output for every subject);
    # at 2e-4 about 370 codes stay in use (synthetic ADNI cohort, 12 epochs). The reference trains
    # 100 epochs at 1e-4 (the study's GPU profile does); 2e-4 suits the short CPU schedules.
    lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    adversarial_weight: float = Field(0.01, ge=0)
    adversarial_warmup_epochs: int = Field(5, ge=0)
    discriminator_channels: int = Field(16, ge=1)
    discriminator_layers: int = Field(2, ge=1)
    perceptual_weight: float = Field(0.001, ge=0)
    # the perceptual loss runs code from the torch hub cache (MONAI's PerceptualLoss): never without an opt-in
    trust_hub_code: bool = False
    perceptual_network: Literal["medicalnet_resnet10_23datasets", "medicalnet_resnet50_23datasets",
                                "radimagenet_resnet50"] = "medicalnet_resnet10_23datasets"


class ITCFNOptions(MethodOptions):
    pet_fill: Literal["generated", "zero", "mean"] = "generated"
    use_pet: bool = True
    upper_bound: bool = False
    mri: str = "mri"
    pet: str = "pet"
    clinical: str | None = "clinical"
    pet_dropout: float = Field(0.3, ge=0.0, le=1.0)
    # network (None: the study's model.embed_dim / model.dropout)
    dim: int | None = Field(None, ge=8)
    fused_dim: int = Field(32, ge=4)
    heads: int = Field(4, ge=1)
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    resnet_planes: tuple[int, int, int, int] = (4, 8, 16, 32)  # CPU scale; wider for 96x128x96 volumes
    resnet_layers: tuple[int, int, int, int] = (1, 1, 1, 1)
    # loss (spec: focal alpha 0.25 multiplying every sample, as in the reference, gamma 2; SDM tau 2,
    # w1 0.2, w2 0.01)
    focal_alpha: float | None = Field(0.25, ge=0.0, le=1.0)
    focal_gamma: float = Field(2.0, ge=0.0)
    sdm_tau: float = Field(2.0, gt=0)
    sdm_w1: float = Field(0.2, ge=0.0, le=1.0)
    sdm_w2: float = Field(0.01, ge=0.0)
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    generator: GeneratorOptions = Field(default_factory=GeneratorOptions)

    @model_validator(mode="after")
    def _consistent(self) -> "ITCFNOptions":
        if self.upper_bound and not self.use_pet:
            raise ValueError("upper_bound needs use_pet: true (it is the model that always sees the real PET)")
        return self

    @property
    def needs_generator(self) -> bool:
        return self.use_pet and self.pet_fill == "generated"


class ClassifierTraining(nn.Module):
    """The Trainer's module for the classifier stage; PET stand-ins come from the method."""

    validates_under_scenarios = True  # training.selection.scenarios (robustmm.engine.selection)

    def __init__(self, method: "ITCFN") -> None:
        super().__init__()
        self.net = method.net
        self._method = [method]  # a plain reference: the method's generator is frozen here
        self.monitor = method.task.primary_metric  # used when training.selection.monitor is "primary"
        opts = method.options
        self.dropout = None
        if opts.use_pet and opts.pet_dropout > 0 and not opts.upper_bound:
            hide_pet = ModalityRateScenario(kind="modality_rate", modality=opts.pet, rate=opts.pet_dropout)
            self.dropout = build_scenario(hide_pet, list(method.context.modalities))

    def trainable_parameters(self):
        return self.net.parameters()

    def training_step(self, batch: Batch, ctx) -> Tensor:
        method = self._method[0]
        if self.dropout is not None:
            batch = self.dropout.apply(batch, method.context.modalities, method.context.seed, ctx.epoch)
        inputs, observed, available = method.complete_inputs(batch)
        out = self.net(inputs, observed)
        target = batch.target.long()
        opts = method.options
        loss = focal_loss(out["logits"].float(), target, alpha=opts.focal_alpha, gamma=opts.focal_gamma)
        return loss + opts.sdm_w2 * method.alignment_loss(out["features"], available, target)

    def validation_metrics(self, data, ctx) -> dict[str, float]:
        """The task's metrics and ``loss``: the focal loss the classifier minimises (without the
        alignment term), for studies that early-stop on the validation loss."""
        method = self._method[0]
        preds = collect_predictions(method.task.inference(method.predict), data, "val", ctx.device)
        metrics = method.task.metrics(preds.outputs, preds.target, preds.meta)
        opts = method.options
        metrics["loss"] = float(focal_loss(torch.as_tensor(preds.outputs["logits"]).float(),
                                           torch.as_tensor(preds.target).long(), alpha=opts.focal_alpha,
                                           gamma=opts.focal_gamma))
        return metrics


@register_method("itcfn")
class ITCFN(Method):
    Options = ITCFNOptions
    reuses = ("itcfn",)  # a trained generator with the same options is taken from an earlier variant

    options: ITCFNOptions

    def __init__(self, options: ITCFNOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        specs = context.modalities
        self.modalities = [m for m in (options.mri, options.pet if options.use_pet else None, options.clinical) if m]
        self.volumes = [m for m in self.modalities if specs[m].kind == "volume"]
        self.task = task_adapter(context.task)
        model = context.model
        self.net = ITCFNNet(specs, self.modalities, context.task.num_classes, dim=options.dim or model.embed_dim,
                            fused_dim=options.fused_dim, heads=options.heads,
                            dropout=model.dropout if options.dropout is None else options.dropout,
                            resnet_planes=options.resnet_planes, resnet_layers=options.resnet_layers)
        self.generator: PetGenerator | None = None
        self.volume_means: dict[str, Tensor] = {}
        self.subjects_with_pet: set[str] = set()
        self.mri_rescale: tuple[float, float] = (1.0, 0.0)
        self.quality: dict[str, Any] = {}
        self.generator_info: dict[str, Any] = {}

    @classmethod
    def check_setup(cls, options: ITCFNOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        """A classification task, and the mri/pet/clinical options naming volume/volume/table modalities."""
        if task.kind not in ("binary", "multiclass"):
            raise ConfigError(f"method '{method_id}' (itcfn) classifies; the data's task is '{task.kind}' (use it "
                              "with binary or multiclass data, e.g. data.kind: adni)")
        roles = {"mri": options.mri, "pet": options.pet, "clinical": options.clinical}
        for role, name in roles.items():
            if name is None:
                continue
            if name not in specs:
                raise ConfigError(f"method '{method_id}': {role}: '{name}' is not a modality of the data "
                                  f"(modalities: {list(specs)}); set methods[].{role}")
            want = "table" if role == "clinical" else "volume"
            if specs[name].kind != want:
                raise ConfigError(f"method '{method_id}': {role} modality '{name}' is a {specs[name].kind}, not a {want}")

    # ------------------------------------------------------------------ inputs
    def complete_inputs(self, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """Inputs with every absent volume replaced by its stand-in, the observed clinical columns,
        and per modality which rows carry a real or generated input. Stand-ins: ``pet_fill`` for
        any absent volume, except that only PET is generated (an absent MRI gets zeros then)."""
        opts = self.options
        present = {m: batch.present[m].to(batch.inputs[m].device) for m in self.modalities}
        if opts.upper_bound:
            real = torch.tensor([s in self.subjects_with_pet for s in batch.subjects], device=present[opts.pet].device)
            present[opts.pet] = present[opts.pet] | real
        inputs: dict[str, Tensor] = {}
        available = dict(present)
        for m in self.volumes:
            x = batch.inputs[m]
            missing = ~present[m]
            if not bool(missing.any()):
                inputs[m] = x
                continue
            shape = (-1,) + (1,) * (x.dim() - 1)
            if opts.pet_fill == "mean" and m in self.volume_means:
                stand_in = self.volume_means[m].to(x.device, x.dtype).unsqueeze(0).expand_as(x)
            else:
                stand_in = torch.zeros_like(x)
            x = torch.where(missing.view(shape), stand_in, x)
            if m == opts.pet and self.generator is not None and opts.pet_fill == "generated":
                rows = (missing & present[opts.mri]).nonzero(as_tuple=True)[0]
                if rows.numel():
                    x = x.index_copy(0, rows, self.generator.generate(inputs[opts.mri][rows]).to(x.dtype))
                    available[m] = present[m].index_fill(0, rows, True)
            inputs[m] = x
        observed = {}
        if opts.clinical:
            inputs[opts.clinical] = batch.inputs[opts.clinical]
            mask = batch.feature_mask.get(opts.clinical)
            observed[opts.clinical] = (mask if mask is not None
                                       else present[opts.clinical].unsqueeze(1).expand_as(inputs[opts.clinical]))
        return inputs, observed, available

    def alignment_loss(self, features: dict[str, Tensor], available: dict[str, Tensor], target: Tensor) -> Tensor:
        """(1 − w1)·mean SDM over volume pairs + w1·mean SDM over (volume, clinical) pairs, each
        over the rows where both inputs are real or generated."""
        opts = self.options
        volume_pairs = [(a, b) for i, a in enumerate(self.volumes) for b in self.volumes[i + 1:]]
        table_pairs = [(v, opts.clinical) for v in self.volumes] if opts.clinical else []
        total = target.new_zeros((), dtype=torch.float32)
        for pairs, weight in ((volume_pairs, 1.0 - opts.sdm_w1), (table_pairs, opts.sdm_w1)):
            terms = []
            for a, b in pairs:
                rows = available[a] & available[b]
                if int(rows.sum()) >= 2:
                    terms.append(sdm_loss(features[a][rows].float(), features[b][rows].float(), target[rows],
                                          tau=opts.sdm_tau))
            if terms:
                total = total + weight * torch.stack(terms).mean()
        return total

    # ------------------------------------------------------------------ training
    def prepare(self, data) -> None:
        """Training-set statistics: mean volumes (mean fill, generator template), who has PET."""
        opts = self.options
        self.task.fit(data)
        if opts.use_pet:
            ids = data.dataset.subject_ids()
            self.subjects_with_pet = {ids[i] for i in np.flatnonzero(data.dataset.natural_presence()[opts.pet])}
        self.volume_means = {m: v.cpu() for m, v in input_means(
            data.loader("train"), {m: data.modalities[m] for m in self.volumes}).items()}

    def fit(self, data, trainer) -> None:
        opts = self.options
        self.prepare(data)
        if opts.needs_generator:  # an upper bound with mean or zero fill never generates a PET
            self.fit_generator(data, trainer)
        train_data = data.complete_cases() if opts.upper_bound else data
        self.net.to(trainer.device)
        if self.generator is not None:
            self.generator.to(trainer.device)
        result = trainer.fit(ClassifierTraining(self), train_data, stage="classifier", epochs=opts.epochs, lr=opts.lr)
        log.info("%s: classifier selected at epoch %d (validation score %.4f)", self.context.method_id,
                 result.best_epoch, result.best_score)
        self.to(trainer.device)

    def _paired(self, data, presence: dict[str, np.ndarray]):
        """A view of ``data`` whose train/val splits keep subjects with both MRI and PET."""
        both = presence[self.options.mri] & presence[self.options.pet]
        view = copy.copy(data)
        view.splits = Splits(data.splits.train[both[data.splits.train]], data.splits.val[both[data.splits.val]],
                             data.splits.test[both[data.splits.test]])
        view.batch_size = self.options.generator.batch_size
        if len(view.splits.train) < 2:
            n = len(view.splits.train)
            raise ConfigError(f"method '{self.context.method_id}': only {counted(n, 'training subject')} "
                              f"{form(n, 'has', 'have')} both MRI and PET; the generator needs pairs (use pet_fill: "
                              "zero or mean)")
        return view

    def fit_generator(self, data, trainer) -> None:
        """Stage 1 (after :meth:`prepare`): train, resume or reuse the MRI -> PET generator, then
        measure it on the test subjects that have real PET."""
        opts, gopts = self.options, self.options.generator
        if not opts.use_pet:
            raise ConfigError(f"method '{self.context.method_id}' has use_pet: false; it has no PET generator")
        paired = self._paired(data, data.dataset.natural_presence())
        earlier = self.context.trained.get("itcfn")
        if (isinstance(earlier, ITCFN) and earlier.generator is not None and earlier.options.generator == gopts
                and (earlier.options.mri, earlier.options.pet) == (opts.mri, opts.pet)):
            log.info("%s: reusing the PET generator trained by %s", self.context.method_id, earlier.context.method_id)
            self.generator, self.mri_rescale = earlier.generator, earlier.mri_rescale
            self.quality = earlier.quality
            self.generator_info = {**earlier.generator_info, "reused_from": earlier.context.method_id}
            return
        shape = data.modalities[opts.pet].shape
        self.generator = self._new_generator()
        self.generator.set_template(self.volume_means[opts.pet], self.volume_means[opts.mri])
        perceptual, perceptual_status = (offline_perceptual_loss(gopts.perceptual_network, gopts.trust_hub_code)
                                         if gopts.perceptual_weight > 0 else (None, "perceptual loss off (weight 0)"))
        log.info("%s: %s", self.context.method_id, perceptual_status)
        module = GeneratorTraining(self.generator, build_discriminator(shape, gopts.discriminator_channels,
                                                                       gopts.discriminator_layers),
                                   opts.mri, opts.pet,
                                   GeneratorLossWeights(gopts.adversarial_weight, gopts.perceptual_weight,
                                                        gopts.adversarial_warmup_epochs), perceptual)
        result = trainer.fit(module, paired, stage="generator", epochs=gopts.epochs, lr=gopts.lr,
                             monitor=GeneratorTraining.monitor,  # the classifier's monitor means nothing here
                             patience=gopts.epochs, lr_schedule=gopts.lr_schedule)
        self.generator.eval()
        device = trainer.device
        with torch.no_grad():  # (MRI, PET, VQ-VAE output) batches for the subject offset and the references
            train, val = ([(m, p, self.generator(m, subject=False)[0])
                           for m, p in self._pair_batches(paired, split, device)] for split in ("train", "val"))
        offset = (self.generator.subject.fit(train, val, self.generator.template)
                  if self.generator.subject is not None else {"penalty": None})
        self.mri_rescale = fit_linear_rescale((m, p) for m, p, _ in train)
        del train, val
        self.generator_info = {"training_pairs": len(paired.splits.train), "validation_pairs": len(paired.splits.val),
                               "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                               "best_val_mae_vqvae": result.best_score, "subject_offset": offset,
                               "codebook_validation": self._codebook_usage(paired, device),
                               "train_seconds": round(result.seconds, 1), "perceptual": perceptual_status}
        self.quality = generation_quality(((m, p, self.generator.generate(m))
                                           for m, p in self._pair_batches(paired, "test", device)),
                                          self.generator.template, self.mri_rescale)
        if self.quality:
            log.info("%s: generated PET on %d test subjects: %s", self.context.method_id,
                     self.quality["test_subjects"], {k: v for k, v in self.quality.items() if isinstance(v, dict)})

    @torch.no_grad()
    def _codebook_usage(self, paired, device: torch.device) -> dict[str, float]:
        """Codes the VQ-VAE uses on the validation pairs' MRI and their perplexity (1 = collapsed:
        every latent takes the same code and the VQ-VAE's output is the same for every subject)."""
        counts = torch.zeros(self.options.generator.codebook_size, dtype=torch.float64)
        for mri, _ in self._pair_batches(paired, "val", device):
            codes = self.generator.codes(mri).flatten().cpu()
            counts += torch.bincount(codes, minlength=len(counts)).double()
        p = counts[counts > 0] / counts.sum().clamp_min(1)
        return {"codes_used": int((counts > 0).sum()), "perplexity": round(float(torch.exp(-(p * p.log()).sum())), 2)}

    def _new_generator(self) -> PetGenerator:
        g = self.options.generator
        return PetGenerator(tuple(self.context.modalities[self.options.pet].shape), g.channels, g.res_layers,
                            g.codebook_size, g.codebook_dim, g.subject_offset, g.centre_mri)

    def _pair_batches(self, paired, split: str, device: torch.device):
        """(MRI, PET) batches of a split of the paired view, on ``device``."""
        for batch in paired.loader(split, shuffle=False):
            yield batch.inputs[self.options.mri].to(device), batch.inputs[self.options.pet].to(device)

    # ------------------------------------------------------------------ inference
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        inputs, observed, _ = self.complete_inputs(batch)
        return self.task.outputs(self.net(inputs, observed)["logits"])

    def generate_pet(self, mri: Tensor) -> Tensor:
        """Generated PET for MRI volumes (B, 1, D, H, W) at the study's volume shape."""
        if self.generator is None:
            raise ConfigError(f"method '{self.context.method_id}' has no PET generator (pet_fill: "
                              f"{self.options.pet_fill}, use_pet: {self.options.use_pet})")
        return self.generator.generate(mri.to(self.device))

    # ------------------------------------------------------------------ state and report
    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "task": self.task.state_dict(),
                "generator": None if self.generator is None else self.generator.state_dict(),
                "volume_means": self.volume_means, "subjects_with_pet": sorted(self.subjects_with_pet),
                "mri_rescale": self.mri_rescale, "quality": self.quality, "generator_info": self.generator_info}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.task.load_state_dict(state["task"])
        if state.get("generator") is not None:
            self.generator = self._new_generator()
            self.generator.load_state_dict(state["generator"])
            self.generator.to(self.device).eval()
        self.volume_means = dict(state.get("volume_means", {}))
        self.subjects_with_pet = set(state.get("subjects_with_pet", []))
        self.mri_rescale = tuple(state.get("mri_rescale", (1.0, 0.0)))
        self.quality = dict(state.get("quality", {}))
        self.generator_info = dict(state.get("generator_info", {}))

    @property
    def upper_bound(self) -> bool:
        return self.options.upper_bound

    def report_items(self) -> dict[str, Any]:
        opts = self.options
        items: dict[str, Any] = {"modalities": self.modalities, "pet_fill": opts.pet_fill if opts.use_pet else None,
                                 "upper_bound": opts.upper_bound, "pet_dropout": opts.pet_dropout}
        if self.generator_info:
            items["generator"] = self.generator_info
        if self.quality:
            items["generation_quality_test"] = self.quality
        return items

    def report_sections(self, data, plots_dir: Path) -> list[tuple[str, str]]:
        """The generation-quality table and mid-slice figure, once per trained generator."""
        if self.generator is None or not self.quality or "reused_from" in self.generator_info:
            return []
        opts = self.options
        subjects, mris, pets = [], [], []
        for batch in data.loader("test", shuffle=False):
            keep = batch.present[opts.pet] & batch.present[opts.mri]
            for i in keep.nonzero(as_tuple=True)[0].tolist():
                if len(subjects) < FIGURE_SUBJECTS:
                    subjects.append(batch.subjects[i])
                    mris.append(batch.inputs[opts.mri][i])
                    pets.append(batch.inputs[opts.pet][i])
        if not subjects:
            return []
        mri, pet = torch.stack(mris), torch.stack(pets)
        name = f"{self.context.method_id}_generated_pet.png"
        mid_slice_figure(mri, pet, self.generate_pet(mri).cpu(), subjects, Path(plots_dir) / name,
                         bool(getattr(data.dataset, "synthetic", False)))
        n = int(self.quality.get("test_subjects", 0))
        table = quality_table_html({k: v for k, v in self.quality.items() if isinstance(v, dict)}, n)
        info = self.generator_info
        note = (f"<p>Generator: {info.get('training_pairs')} training pairs, "
                f"{counted(info.get('epochs_run'), 'epoch')} "
                f"(best validation MAE at epoch {info.get('best_epoch')}), {info.get('train_seconds')} s; "
                f"{html.escape(str(info.get('perceptual')))}.</p>")
        return [(f"{self.context.method_id}: generated PET (MMG)",
                 table + note + f"<img src='plots/{name}' alt='generated PET mid-slices'>")]

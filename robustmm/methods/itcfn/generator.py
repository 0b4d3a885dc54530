"""Missing-modality generation (MMG): a 3-D MRI -> PET translator from MONAI's generative networks.

The translator is MONAI's ``VQVAE`` (two stride-2 downsamplings, a vector-quantised latent of
``codebook_size`` x ``codebook_dim``) whose decoder predicts the deviation of this subject's PET
from the training-set mean PET (a population template, held as a buffer): with a few hundred
training pairs the template is the strongest single guess, and the network's few epochs go into
what the MRI says about this subject rather than into re-learning the template. For the same
reason its input is, by default, the MRI minus the training-set mean MRI: what differs between
subjects is then what the encoder sees first (a voxel-wise map is learnt about 3x faster, and on
a cohort with a local MRI -> PET relation it is what lets the output leave the template;
benchmarks/itcfn_diagnosis/README.md). Its codebook is
initialised from encoder outputs (see :meth:`PetGenerator.init_codebook`). After training, a
closed-form ridge read-out of the whole MRI adds the subject's overall PET level
(:class:`SubjectOffset`), which the VQ-VAE's local latents cannot see.

Training (one Trainer stage, checkpointed and resumable like any other) uses only training
subjects that have both scans, early-stops on validation-subject MAE, and minimises

    L = L1(ŷ, y) + L_VQ + w_perc · L_perceptual + w_adv · L_adv          (adversarial after a warm-up)

with MONAI's least-squares ``PatchAdversarialLoss`` against a ``PatchDiscriminator``. Generator and
discriminator share the Trainer's single optimizer: the discriminator's loss sees the generated
volume detached, and the generator's adversarial term runs the discriminator with detached
parameters (``torch.func.functional_call``), so each loss only moves its own network. The
perceptual term needs pretrained weights, which MONAI loads by running the ``hubconf.py`` of a
repository in the torch hub cache; it is used only with the opt-in ``generator.trust_hub_code: true``
and when MONAI can load the weights without a network connection, and is otherwise switched off
with a log line saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss
from monai.metrics import MAEMetric, PSNRMetric, SSIMMetric
from monai.networks.nets import VQVAE, PatchDiscriminator
from torch import Tensor, nn
from torch.func import functional_call

from robustmm.io import save_figure

log = logging.getLogger("robustmm")

#: intensity range of preprocessed volumes (robustmm.data.volumes scales to [-1, 1])
DATA_RANGE = 2.0


class SubjectOffset(nn.Module):
    """A subject's overall PET level, read from the whole MRI (closed-form ridge regression).

    A subject's disease stage shows in a few MRI voxels (ventricles, hippocampi) far from the
    cortex whose PET it changes, beyond the reach of the VQ-VAE's local latents, and after
    per-scan intensity normalisation it moves the PET of the whole brain. After the VQ-VAE is
    trained, the mean of its residual (PET − output) over the brain is regressed (ridge) on the
    standardised, 4x average-pooled MRI of the training pairs, and a per-voxel map, fitted to the
    same residuals, spreads the predicted shift over the volume. The ridge penalty, or no offset
    at all, is chosen on the validation pairs' MAE.
    """

    #: ridge penalties, as multiples of the number of MRI features (each sample's squared norm)
    PENALTIES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)

    def __init__(self, volume_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(volume_shape)
        self.features = nn.AvgPool3d(4, ceil_mode=True)
        self.targets = nn.AvgPool3d(2, ceil_mode=True)
        n_features = self.features(torch.zeros(1, *volume_shape)).numel()
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("readout", torch.zeros(n_features))
        self.register_buffer("pattern", torch.zeros(volume_shape))

    def _standardised(self, mri: Tensor) -> Tensor:
        return (self.features(mri.float()).flatten(1) - self.feature_mean) / self.feature_std

    def forward(self, mri: Tensor) -> Tensor:
        offset = self._standardised(mri) @ self.readout
        return offset.view(-1, *([1] * len(self.shape))) * self.pattern

    @torch.no_grad()
    def fit(self, train: list[tuple[Tensor, Tensor, Tensor]], val: list[tuple[Tensor, Tensor, Tensor]],
            template: Tensor) -> dict:
        """``train``/``val``: batches of (MRI, PET, VQ-VAE output). Returns what was chosen."""
        mri = torch.cat([b[0] for b in train]).float()
        pooled = self.features(mri).flatten(1)
        self.feature_mean.copy_(pooled.mean(0))
        self.feature_std.copy_(pooled.std(0).clamp_min(1e-6))
        x = self._standardised(mri).double()
        brain = (self.targets(template.unsqueeze(0).float()) > template.min() + 0.5 * (template.max() - template.min()))
        residual = torch.cat([self.targets((pet - out).float()) for _, pet, out in train]).flatten(1).double()
        residual = residual - residual.mean(0)  # the average subject keeps the VQ-VAE's output
        level = residual[:, brain.flatten()].mean(1)
        gram = x @ x.T
        x_val = torch.cat([self._standardised(b[0]) for b in val]).double()
        pet_val = torch.cat([b[1] for b in val]).float()
        out_val = torch.cat([b[2] for b in val]).float()
        best = {"penalty": None, "val_mae": float((out_val.clamp(-1, 1) - pet_val).abs().mean())}
        for penalty in self.PENALTIES:
            dual = torch.linalg.solve(gram + penalty * x.shape[1] * torch.eye(len(x), dtype=x.dtype), level)
            fitted = gram @ dual
            pattern = (fitted @ residual) / (fitted @ fitted).clamp_min(1e-12)
            weights = x.T @ dual
            change = (x_val @ weights).view(-1, 1) * pattern.view(1, -1)
            mae = float(((out_val + self._upsample(change, len(x_val))).clamp(-1, 1) - pet_val).abs().mean())
            if mae < best["val_mae"]:
                best = {"penalty": penalty, "val_mae": mae, "weights": weights, "pattern": pattern}
        self.readout.zero_()
        self.pattern.zero_()
        if best["penalty"] is not None:
            self.readout.copy_(best.pop("weights").float())
            self.pattern.copy_(self._upsample(best.pop("pattern").view(1, -1), 1)[0])
        return best

    def _upsample(self, flat: Tensor, n: int) -> Tensor:
        """(n, pooled voxels) at the 2x pooled grid -> (n, *volume_shape)."""
        grid = self.targets(torch.zeros(1, *self.shape)).shape[1:]
        coarse = flat.float().view(n, *grid)
        return F.interpolate(coarse, size=self.shape[1:], mode="trilinear", align_corners=False)


class PetGenerator(nn.Module):
    """MRI (B, 1, D, H, W) -> PET of the same shape: template + VQ-VAE(MRI) + the subject's
    PET level (``subject_offset``; see :class:`SubjectOffset`)."""

    def __init__(self, volume_shape: tuple[int, ...], channels: tuple[int, int] = (16, 32), res_layers: int = 1,
                 codebook_size: int = 1024, codebook_dim: int = 32, subject_offset: bool = True,
                 centre_mri: bool = True) -> None:
        super().__init__()
        self.vqvae = VQVAE(spatial_dims=3, in_channels=volume_shape[0], out_channels=volume_shape[0],
                           channels=tuple(channels), num_res_layers=res_layers, num_res_channels=tuple(channels),
                           downsample_parameters=((2, 4, 1, 1), (2, 4, 1, 1)),
                           upsample_parameters=((2, 4, 1, 1, 0), (2, 4, 1, 1, 0)),
                           num_embeddings=codebook_size, embedding_dim=codebook_dim)
        self.subject = SubjectOffset(volume_shape) if subject_offset else None
        self.register_buffer("template", torch.zeros(volume_shape))
        self.centre_mri = centre_mri
        self.register_buffer("mri_mean", torch.zeros(volume_shape))
        self.register_buffer("codebook_ready", torch.tensor(False))

    @torch.no_grad()
    def set_template(self, template: Tensor, mri_mean: Tensor | None = None) -> None:
        """The training-set mean PET (the output's starting point) and mean MRI (subtracted from
        the input when ``centre_mri``)."""
        self.template.copy_(template)
        if mri_mean is not None:
            self.mri_mean.copy_(mri_mean)

    def encoder_input(self, mri: Tensor) -> Tensor:
        return mri - self.mri_mean.unsqueeze(0) if self.centre_mri else mri

    @torch.no_grad()
    def codes(self, mri: Tensor) -> Tensor:
        """The codebook index of every latent position."""
        return self.vqvae.index_quantize(self.encoder_input(mri.float()))

    @torch.no_grad()
    def init_codebook(self, mri: Tensor) -> None:
        """Codebook entries drawn from the encoder's outputs on training MRI. MONAI's default
        N(0, 1) entries lie far from the encoder's output scale, so every latent vector picks the
        same nearest entry and nothing about the subject passes the bottleneck (the output is
        then the template plus a constant) until the codebook drifts apart by chance."""
        quantizer = self.vqvae.quantizer.quantizer
        latents = self.vqvae.encode(self.encoder_input(mri.float()))
        flat = latents.movedim(1, -1).reshape(-1, latents.shape[1])
        picks = flat[torch.randint(flat.shape[0], (quantizer.num_embeddings,), device=flat.device)]
        quantizer.embedding.weight.copy_(picks)
        quantizer.ema_w.copy_(picks)
        quantizer.ema_cluster_size.fill_(1.0)  # consistent with ema_w: the next EMA step keeps the entries
        self.codebook_ready.fill_(True)

    def forward(self, mri: Tensor, subject: bool = True) -> tuple[Tensor, Tensor]:
        """Returns the generated PET (unclipped) and the quantisation loss; ``subject=False``
        leaves out the subject offset (it is fitted after the VQ-VAE, on its residuals)."""
        residual, quantization_loss = self.vqvae(self.encoder_input(mri))
        if subject and self.subject is not None:
            residual = residual + self.subject(mri)
        return self.template.unsqueeze(0) + residual, quantization_loss

    @torch.no_grad()
    def generate(self, mri: Tensor, batch_size: int = 16) -> Tensor:
        """Generated PET in the data range [-1, 1], in eval mode (the codebook is not updated)."""
        was_training = self.training
        self.eval()
        outs = [self(chunk.float())[0].clamp(-1.0, 1.0) for chunk in mri.split(batch_size)]
        self.train(was_training)
        return torch.cat(outs).to(mri.dtype)


def build_discriminator(volume_shape: tuple[int, ...], channels: int, layers: int) -> PatchDiscriminator:
    # instance norm: real and generated volumes pass through separately, so batch statistics would differ
    return PatchDiscriminator(spatial_dims=3, channels=channels, in_channels=volume_shape[0], num_layers_d=layers,
                              norm="INSTANCE")


def offline_perceptual_loss(network: str, trust_hub_code: bool) -> tuple[nn.Module | None, str]:
    """MONAI's PerceptualLoss if the user trusts the hub repository's code and its pretrained weights
    load without a network, else (None, why)."""
    hub = Path(torch.hub.get_dir())
    repo = hub / "Project-MONAI_perceptual-models_main"
    if not trust_hub_code:  # MONAI calls torch.hub.load(trust_repo=True): the cached hubconf.py would run
        return None, (f"perceptual loss off: MONAI builds it by running the Python code (hubconf.py) of {repo}, "
                      "which robustmm does not run without an opt-in; if you trust that folder's code, set the method "
                      "option generator.trust_hub_code: true (--set methods.<method id>.generator.trust_hub_code=true)")
    from monai.losses import PerceptualLoss

    if not repo.is_dir():
        return None, (f"perceptual loss off: the weights of '{network}' are not available offline "
                      f"({repo} is absent; torch.hub would download them)")
    try:
        loss = PerceptualLoss(spatial_dims=3, network_type=network, is_fake_3d=not network.startswith("medicalnet"),
                              channel_wise=False)
    except Exception as exc:  # torch.hub raises URLError, HTTPError, RuntimeError, ... when offline
        return None, f"perceptual loss off: loading '{network}' from {hub} failed ({type(exc).__name__}: {exc})"
    return loss, f"perceptual loss on ({network}, weights from {hub})"


@dataclass
class GeneratorLossWeights:
    adversarial: float = 0.01
    perceptual: float = 0.001
    adversarial_warmup_epochs: int = 5


class GeneratorTraining(nn.Module):
    """The Trainer's module for the generator stage (batches: subjects with both scans)."""

    monitor = "mae"
    monitor_mode = "min"

    def __init__(self, generator: PetGenerator, discriminator: PatchDiscriminator, source: str, target: str,
                 weights: GeneratorLossWeights, perceptual: nn.Module | None) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.source, self.target = source, target
        self.weights = weights
        self.adversarial = PatchAdversarialLoss(criterion="least_squares")
        # not a submodule: frozen pretrained weights stay out of checkpoints and of the optimizer
        self._perceptual = [perceptual] if perceptual is not None else []

    def _pairs(self, batch) -> tuple[Tensor, Tensor] | None:
        both = batch.present[self.source] & batch.present[self.target]
        if not bool(both.any()):
            return None
        return batch.inputs[self.source][both], batch.inputs[self.target][both]

    def training_step(self, batch, ctx) -> Tensor | None:
        pairs = self._pairs(batch)
        if pairs is None:
            return None
        mri, pet = pairs
        if not bool(self.generator.codebook_ready):
            self.generator.init_codebook(mri)
        fake, quantization_loss = self.generator(mri, subject=False)
        loss = F.l1_loss(fake.float(), pet.float()) + quantization_loss
        for perceptual in self._perceptual:
            perceptual.to(fake.device)
            loss = loss + self.weights.perceptual * perceptual(fake.float(), pet.float())
        if ctx.epoch >= self.weights.adversarial_warmup_epochs and self.weights.adversarial > 0:
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            fooled = functional_call(self.discriminator, frozen, (fake,))[-1]
            loss = loss + self.weights.adversarial * self.adversarial(fooled, target_is_real=True,
                                                                      for_discriminator=False)
            real_logits = self.discriminator(pet)[-1]
            fake_logits = self.discriminator(fake.detach())[-1]
            loss = loss + 0.5 * (self.adversarial(real_logits, target_is_real=True, for_discriminator=True)
                                 + self.adversarial(fake_logits, target_is_real=False, for_discriminator=True))
        return loss

    def validation_metrics(self, data, ctx) -> dict[str, float]:
        preds, targets = [], []
        for batch in data.loader("val", shuffle=False):
            pairs = self._pairs(batch.to(ctx.device))
            if pairs is not None:
                preds.append(self.generator.generate(pairs[0]))
                targets.append(pairs[1])
        if not preds:
            raise RuntimeError("no validation subject has both scans; the generator cannot be early-stopped "
                               "(use more subjects or a larger split.val_fraction)")
        return image_metrics(torch.cat(preds).float(), torch.cat(targets).float())


def image_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """MAE, PSNR and SSIM (MONAI metrics, data range [-1, 1]) averaged over volumes."""
    pred, target = pred.float().cpu(), target.float().cpu()
    return {
        "mae": float(MAEMetric(reduction="mean")(pred, target).mean()),
        "psnr": float(PSNRMetric(max_val=DATA_RANGE, reduction="mean")(pred, target).mean()),
        "ssim": float(SSIMMetric(spatial_dims=3, data_range=DATA_RANGE, reduction="mean")(pred, target).mean()),
    }


def fit_linear_rescale(pairs: Iterable[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """Least-squares (a, b) with a·source + b ≈ target over every voxel of every (source, target)
    batch (accumulated sums, so the pairs never have to fit in memory at once)."""
    n = sx = sy = sxx = sxy = 0.0
    for source, target in pairs:
        x, y = source.double().flatten(), target.double().flatten()
        n += x.numel()
        sx, sy = sx + float(x.sum()), sy + float(y.sum())
        sxx, sxy = sxx + float((x * x).sum()), sxy + float((x * y).sum())
    a = (n * sxy - sx * sy) / max(n * sxx - sx * sx, 1e-12)
    return float(a), float((sy - a * sx) / n)


def generation_quality(batches: Iterable[tuple[Tensor, Tensor, Tensor]], template: Tensor,
                       rescale: tuple[float, float]) -> dict[str, Any]:
    """Generated PET next to two trivial references (the train-set mean PET; the MRI rescaled by
    the training least-squares fit), each against the real PET; ``batches`` of (MRI, real PET,
    generated PET). Metrics are means over volumes."""
    a, b = rescale
    sums: dict[str, dict[str, float]] = {}
    count = 0
    for mri, real, generated in batches:
        n = len(real)
        estimates = {"generated": generated, "train_mean_pet": template.unsqueeze(0).expand_as(real),
                     "mri_rescaled": (a * mri.float() + b).clamp(-1.0, 1.0)}
        for name, estimate in estimates.items():
            for metric, value in image_metrics(estimate, real).items():
                sums.setdefault(name, {}).setdefault(metric, 0.0)
                sums[name][metric] += value * n
        count += n
    if not count:
        return {}
    return {**{name: {k: v / count for k, v in m.items()} for name, m in sums.items()}, "test_subjects": count}


def mid_slice_figure(mri: Tensor, real: Tensor, generated: Tensor, subjects: list[str], path: Path,
                     synthetic: bool) -> Path:
    """Rows: subjects; columns: MRI, real PET, generated PET, |error| (middle axial slice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(subjects)
    fig, axes = plt.subplots(rows, 4, figsize=(8, 2.2 * rows), squeeze=False)
    mid = mri.shape[-1] // 2
    for i, subject in enumerate(subjects):
        panels = [(mri[i, 0, :, :, mid], "MRI", "gray", (-1, 1)), (real[i, 0, :, :, mid], "real PET", "hot", (-1, 1)),
                  (generated[i, 0, :, :, mid], "generated PET", "hot", (-1, 1)),
                  ((generated[i, 0] - real[i, 0]).abs()[:, :, mid], "|error|", "viridis", (0, 1))]
        for j, (img, title, cmap, (lo, hi)) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(np.rot90(img.float().cpu().numpy()), cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel(subject, fontsize=7)
    fig.suptitle("Generated PET on held-out test subjects" + ("  [SYNTHETIC DATA]" if synthetic else ""), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def quality_table_html(quality: dict[str, dict[str, float]], n: int) -> str:
    rows = "".join(
        f"<tr><td>{name}</td><td>{m['mae']:.4f}</td><td>{m['psnr']:.2f}</td><td>{m['ssim']:.4f}</td></tr>"
        for name, m in quality.items())
    return (f"<p>Real PET of {n} test subjects vs. the generated PET and two trivial references "
            "(intensities in the preprocessed [-1, 1] scale).</p>"
            f"<table><tr><th>PET estimate</th><th>MAE ↓</th><th>PSNR (dB) ↑</th><th>SSIM ↑</th></tr>{rows}</table>")


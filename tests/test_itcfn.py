"""ITCFN: co-attention and alignment against hand computations, PET stand-ins, the generator stage,
NIfTI export on the source MRI's grid, and a tiny study + ``robustmm generate`` end to end."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from robustmm.config.schema import ModelConfig, TrainingConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch, ModalitySpec
from robustmm.methods.base import MethodContext
from robustmm.methods.itcfn.export import generated_pet_nifti, write_generated_pet
from robustmm.methods.itcfn.generator import (
    GeneratorLossWeights,
    GeneratorTraining,
    PetGenerator,
    SubjectOffset,
    build_discriminator,
    fit_linear_rescale,
)
from robustmm.methods.itcfn.method import ITCFN, ITCFNOptions
from robustmm.models.itcfn import ChannelAggregation, ClinicalTokens, ITCFNNet, TriModalCoAttention

SHAPE = (1, 8, 12, 8)
SPECS = {"mri": ModalitySpec("mri", "volume", SHAPE), "pet": ModalitySpec("pet", "volume", SHAPE),
         "clinical": ModalitySpec("clinical", "table", (5,))}
SMALL = {"dim": 16, "fused_dim": 8, "heads": 2, "resnet_planes": (4, 4, 8, 8)}


def _method(**options) -> ITCFN:
    opts = ITCFNOptions.model_validate({**SMALL, **options})
    ctx = MethodContext("itcfn_test", SPECS, TaskSpec("binary", 2, ("sMCI", "pMCI")), ModelConfig(),
                        TrainingConfig(device="cpu"), seed=0)
    return ITCFN(opts, ctx)


def _batch(n: int = 6, pet_present=None, mri_present=None, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    present = {"mri": torch.ones(n, dtype=torch.bool) if mri_present is None else torch.tensor(mri_present),
               "pet": torch.ones(n, dtype=torch.bool) if pet_present is None else torch.tensor(pet_present),
               "clinical": torch.ones(n, dtype=torch.bool)}
    inputs = {"mri": torch.rand((n, *SHAPE), generator=g) * 2 - 1, "pet": torch.rand((n, *SHAPE), generator=g) * 2 - 1,
              "clinical": torch.randn((n, 5), generator=g)}
    valid = {"clinical": torch.ones(n, 5, dtype=torch.bool)}
    return Batch(inputs, present, valid, {k: v.clone() for k, v in valid.items()},
                 torch.tensor([i % 2 for i in range(n)]), {"subject": [f"S{i}" for i in range(n)]})


# ----------------------------------------------------------------------------- network blocks
def test_co_attention_follows_the_spec_formula() -> None:
    torch.manual_seed(0)
    block = TriModalCoAttention(["mri", "pet", "clinical"], dim=6, dropout=0.0).eval()
    tokens = {"mri": torch.randn(3, 4, 6), "pet": torch.randn(3, 4, 6), "clinical": torch.randn(3, 5, 6)}
    pooled = {m: t.mean(dim=1) for m, t in tokens.items()}
    fused, attention = block(tokens, pooled)

    def lin(layer, x):
        return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    q = lin(block.query, np.concatenate([pooled[m].numpy() for m in block.modalities], axis=1))
    expected = []
    for m in block.modalities:
        k, v = lin(block.keys[m], tokens[m].numpy()), lin(block.values[m], tokens[m].numpy())
        scores = np.einsum("bd,bnd->bn", q, k) / math.sqrt(6)
        w = np.exp(scores - scores.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        np.testing.assert_allclose(attention[m].detach().numpy(), w, atol=1e-6)
        context = np.einsum("bn,bnd->bd", w, v)
        expected.append(lin(block.outputs[m], np.concatenate([pooled[m].numpy(), context], axis=1)))
    np.testing.assert_allclose(fused.detach().numpy(), np.concatenate(expected, axis=1), atol=1e-5)


def test_channel_aggregation_reduces_channels_and_clinical_tokens_ignore_unobserved_values() -> None:
    torch.manual_seed(0)
    tokens, pooled = ChannelAggregation(16, 8)(torch.randn(2, 5, 16))
    assert tokens.shape == (2, 5, 8) and pooled.shape == (2, 8)
    torch.testing.assert_close(pooled, tokens.mean(dim=1))

    tok = ClinicalTokens(3, 4)
    x = torch.tensor([[1.0, 2.0, 3.0]])
    observed = torch.tensor([[True, False, True]])
    changed = x.clone()
    changed[0, 1] = 100.0  # an unobserved column's value must not matter
    torch.testing.assert_close(tok(x, observed), tok(changed, observed))
    assert not torch.allclose(tok(x), tok(changed))


def test_network_shapes_with_three_and_two_modalities() -> None:
    torch.manual_seed(0)
    batch = _batch(4)
    for mods in (["mri", "pet", "clinical"], ["mri", "clinical"]):
        net = ITCFNNet(SPECS, mods, num_classes=2, dim=16, fused_dim=8, heads=2, resnet_planes=(4, 4, 8, 8))
        out = net({m: batch.inputs[m] for m in mods}, {"clinical": batch.feature_mask["clinical"]})
        assert out["logits"].shape == (4, 2) and out["fused"].shape == (4, 8 * len(mods))
        assert set(out["features"]) == set(mods)
    with pytest.raises(ValueError, match="not in the data"):
        ITCFNNet(SPECS, ["mri", "flair"], num_classes=2)


# ----------------------------------------------------------------------------- loss
def _np_sdm(a: np.ndarray, b: np.ndarray, y: np.ndarray, tau: float = 2.0, eps: float = 1e-8) -> float:
    def one_way(logits):
        logits = logits - logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        same = (y[:, None] == y[None, :]).astype(float)
        q = same / same.sum(1, keepdims=True)
        return float((np.exp(log_p) * (log_p - np.log(q + eps))).sum(1).mean())

    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = an @ bn.T
    return one_way(tau * cos) + one_way(tau * cos.T)


def test_alignment_loss_is_the_spec_combination_over_available_rows() -> None:
    method = _method()
    rng = np.random.default_rng(0)
    feats = {m: rng.normal(size=(6, 8)) for m in ("mri", "pet", "clinical")}
    y = np.array([0, 1, 0, 1, 1, 0])
    available = {"mri": torch.ones(6, dtype=torch.bool), "clinical": torch.ones(6, dtype=torch.bool),
                 "pet": torch.tensor([True, True, False, True, True, False])}
    got = method.alignment_loss({m: torch.tensor(v) for m, v in feats.items()}, available, torch.tensor(y))
    rows = available["pet"].numpy()
    w1 = 0.2
    expected = ((1 - w1) * _np_sdm(feats["mri"][rows], feats["pet"][rows], y[rows])
                + w1 * 0.5 * (_np_sdm(feats["pet"][rows], feats["clinical"][rows], y[rows])
                              + _np_sdm(feats["mri"], feats["clinical"], y)))
    assert float(got) == pytest.approx(expected, abs=1e-6)


# ----------------------------------------------------------------------------- PET stand-ins
def test_absent_pet_becomes_zeros_mean_or_generated() -> None:
    batch = _batch(4, pet_present=[True, False, False, True], mri_present=[True, True, False, True])
    template = torch.full(SHAPE, 0.25)

    zero = _method(pet_fill="zero")
    inputs, _, available = zero.complete_inputs(batch)
    assert torch.equal(inputs["pet"][[0, 3]], batch.inputs["pet"][[0, 3]])
    assert inputs["pet"][1:3].abs().sum() == 0 and inputs["mri"][2].abs().sum() == 0
    assert available["pet"].tolist() == [True, False, False, True]

    mean = _method(pet_fill="mean")
    mean.volume_means = {"pet": template, "mri": torch.zeros(SHAPE)}
    inputs, _, _ = mean.complete_inputs(batch)
    assert torch.equal(inputs["pet"][1], template)

    generated = _method(pet_fill="generated")
    generated.generator = PetGenerator(SHAPE, channels=(4, 8), codebook_size=8, codebook_dim=4)
    generated.generator.set_template(template)
    inputs, _, available = generated.complete_inputs(batch)
    expected = generated.generator.generate(batch.inputs["mri"][1:2])
    torch.testing.assert_close(inputs["pet"][1:2], expected)
    assert inputs["pet"][2].abs().sum() == 0  # no MRI either: nothing to generate from
    assert available["pet"].tolist() == [True, True, False, True]


def test_upper_bound_reads_the_real_pet_the_scenario_hides() -> None:
    batch = _batch(3, pet_present=[False, False, True])
    bound = _method(upper_bound=True, pet_fill="zero")
    bound.subjects_with_pet = {"S0", "S2"}  # S1 never had PET
    inputs, _, _ = bound.complete_inputs(batch)
    assert torch.equal(inputs["pet"][0], batch.inputs["pet"][0])
    assert inputs["pet"][1].abs().sum() == 0
    with pytest.raises(ValueError, match="use_pet"):
        ITCFNOptions(upper_bound=True, use_pet=False)


@pytest.mark.parametrize("fill, trains_generator", [("mean", False), ("zero", False), ("generated", True)])
def test_only_a_generated_fill_trains_a_generator(fill: str, trains_generator: bool, monkeypatch) -> None:
    from types import SimpleNamespace

    bound = _method(upper_bound=True, pet_fill=fill)
    trained = []
    monkeypatch.setattr(bound, "prepare", lambda data: None)
    monkeypatch.setattr(bound, "fit_generator", lambda data, trainer: trained.append(True))
    data = SimpleNamespace(complete_cases=lambda: "complete cases")
    trainer = SimpleNamespace(device=torch.device("cpu"), fit=lambda *a, **k: SimpleNamespace(best_epoch=0, best_score=0.0))
    bound.fit(data, trainer)
    assert bool(trained) == trains_generator  # the upper bound with mean fill trained a 60-epoch generator it never used


# ----------------------------------------------------------------------------- generator
class _Ctx:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch


def test_adversarial_terms_start_after_warmup_and_each_loss_moves_only_its_network() -> None:
    torch.manual_seed(0)
    gen = PetGenerator(SHAPE, channels=(4, 8), codebook_size=8, codebook_dim=4)
    disc = build_discriminator(SHAPE, channels=4, layers=1)
    module = GeneratorTraining(gen, disc, "mri", "pet", GeneratorLossWeights(adversarial=0.5, perceptual=0.0,
                                                                              adversarial_warmup_epochs=2), None)
    batch = _batch(4)
    module.training_step(batch, _Ctx(epoch=1)).backward()
    assert all(p.grad is None for p in disc.parameters())  # warm-up: no adversarial term

    module.zero_grad(set_to_none=True)
    captured = {}
    forward = gen.forward

    def recording(mri, **kwargs):  # the VQ codebook moves on every training forward: keep this step's output
        out = forward(mri, **kwargs)
        captured["fake"] = out[0].detach()
        return out

    gen.forward = recording
    module.training_step(batch, _Ctx(epoch=2)).backward()
    grads = [p.grad.clone() for p in disc.parameters()]
    assert any(g.abs().sum() > 0 for g in grads)
    # the discriminator's gradient is exactly that of its own real/fake loss (the generator's
    # adversarial term runs it with detached parameters)
    disc.zero_grad(set_to_none=True)
    own = 0.5 * (module.adversarial(disc(batch.inputs["pet"])[-1], True, True)
                 + module.adversarial(disc(captured["fake"])[-1], False, True))
    own.backward()
    for g, p in zip(grads, disc.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-6, rtol=1e-4)


def test_generator_learns_a_mapping_that_the_template_cannot() -> None:
    """PET = a smooth function of MRI: after a short training the generator beats the mean."""
    torch.manual_seed(0)
    n = 12
    base = torch.linspace(-1, 1, SHAPE[1]).view(1, 1, -1, 1, 1).expand(n, *SHAPE).clone()
    mri = base * torch.linspace(0.2, 1.0, n).view(-1, 1, 1, 1, 1)
    pet = (-0.8 * mri + 0.1).clamp(-1, 1)
    gen = PetGenerator(SHAPE, channels=(8, 8), codebook_size=32, codebook_dim=8)
    gen.set_template(pet.mean(0))
    gen.init_codebook(mri)
    opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
    for _ in range(80):
        fake, q = gen(mri)
        loss = (fake - pet).abs().mean() + q
        opt.zero_grad()
        loss.backward()
        opt.step()
    generated_mae = float((gen.generate(mri) - pet).abs().mean())
    template_mae = float((pet.mean(0, keepdim=True) - pet).abs().mean())
    assert generated_mae < 0.5 * template_mae


def _anatomy_pairs(n: int, seed: int, shape=(1, 16, 20, 16)) -> tuple[torch.Tensor, torch.Tensor]:
    """MRI: an anatomy every subject shares plus a small blob whose contrast is the subject's factor
    f; PET: the same anatomy with half the brain changed by f."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.meshgrid(*[torch.linspace(-1, 1, k) for k in shape[1:]], indexing="ij")
    brain = torch.exp(-sum(x**2 for x in grid) / 0.4)
    blob = torch.exp(-((grid[0] - 0.3) ** 2 + grid[1] ** 2 + grid[2] ** 2) / 0.05)
    f = torch.randn(n, generator=g).view(-1, 1, 1, 1, 1)
    mri = 2 * (brain + 0.3 * f * blob) - 1 + 0.1 * torch.randn(n, *shape, generator=g)
    pet = 2 * brain * (1 - 0.3 * f * (grid[1] > 0)) - 1 + 0.1 * torch.randn(n, *shape, generator=g)
    return mri.clamp(-1, 1), pet.clamp(-1, 1)


def _train_default_generator(mri, pet, lr: float, steps: int) -> PetGenerator:
    """The default-sized VQ-VAE (1024 x 32 codebook) trained as the generator stage trains it."""
    torch.manual_seed(0)
    gen = PetGenerator(tuple(mri.shape[1:]), subject_offset=False)
    gen.set_template(pet.mean(0))
    gen.init_codebook(mri[:8])
    opt = torch.optim.Adam(gen.parameters(), lr=lr)
    order = torch.Generator().manual_seed(0)
    for _ in range(steps):
        rows = torch.randperm(len(mri), generator=order)[:8]
        fake, q = gen(mri[rows])
        loss = (fake - pet[rows]).abs().mean() + q
        opt.zero_grad()
        loss.backward()
        opt.step()
    return gen


def _codes_used(gen: PetGenerator, mri: torch.Tensor) -> int:
    with torch.no_grad():
        return len(gen.codes(mri).unique())


def test_generator_default_lr_keeps_the_codebook_in_use() -> None:
    """At the former default lr (2e-3) the VQ-VAE collapses within a few Adam steps: the encoder's
    outputs jump off the scale of the codebook (initialised from them), every latent takes one
    code and the generated PET is the same volume for every subject. The default lr keeps many
    codes in use (it was 1 of 1024 codes, perplexity 1, on the synthetic ADNI cohort)."""
    from robustmm.methods.itcfn.method import GeneratorOptions

    mri, pet = _anatomy_pairs(32, 0)
    held_out, _ = _anatomy_pairs(16, 1)
    collapsed = _train_default_generator(mri, pet, lr=2e-3, steps=30)
    assert _codes_used(collapsed, held_out) == 1
    assert float(collapsed.generate(held_out).std(0).max()) == 0.0
    kept = _train_default_generator(mri, pet, lr=GeneratorOptions().lr, steps=30)
    assert _codes_used(kept, held_out) > 16


def test_subject_offset_recovers_a_brain_wide_shift_shown_by_a_small_mri_region() -> None:
    torch.manual_seed(0)
    n = 60
    factor = torch.randn(n).view(-1, 1, 1, 1, 1)
    mri = 0.1 * torch.randn(n, *SHAPE)
    mri[:, :, 2:4, 4:6, 2:4] += factor  # a few voxels show it ...
    grid = torch.meshgrid(*[torch.linspace(-1, 1, k) for k in SHAPE[1:]], indexing="ij")
    brain = torch.exp(-sum(g**2 for g in grid) / 0.5).unsqueeze(0)
    template = 2 * brain - 1
    pet = template + 0.2 * factor * brain + 0.02 * torch.randn(n, *SHAPE)  # ... the whole brain's PET follows it
    vqvae_output = template.expand_as(pet)  # a VQ-VAE that only reproduces the template
    offset = SubjectOffset(SHAPE)
    chosen = offset.fit([(mri[:40], pet[:40], vqvae_output[:40])], [(mri[40:], pet[40:], vqvae_output[40:])],
                        template)
    assert chosen["penalty"] in SubjectOffset.PENALTIES
    before = float((template - pet[40:]).abs().mean())
    oracle = float((template + 0.2 * factor[40:] * brain - pet[40:]).abs().mean())  # knows the factor
    after = float((template + offset(mri[40:]) - pet[40:]).abs().mean())
    assert after == pytest.approx(chosen["val_mae"], rel=1e-4)
    assert before - after > 0.7 * (before - oracle)

    pure_noise = template + 0.02 * torch.randn(n, *SHAPE)  # nothing to learn: the offset stays off
    assert SubjectOffset(SHAPE).fit([(mri[:40], pure_noise[:40], vqvae_output[:40])],
                                    [(mri[40:], pure_noise[40:], vqvae_output[40:])], template)["penalty"] is None


def test_linear_rescale_recovers_a_known_map() -> None:
    x = torch.randn(6, 1, 4, 4, 4)
    a, b = fit_linear_rescale([(x[:4], 0.5 * x[:4] - 0.2), (x[4:], 0.5 * x[4:] - 0.2)])
    assert a == pytest.approx(0.5, abs=1e-6) and b == pytest.approx(-0.2, abs=1e-6)


# ----------------------------------------------------------------------------- NIfTI export
def test_generated_nifti_is_on_the_source_mri_grid(tmp_path: Path) -> None:
    """A left-right flipped (LAS) MRI of another shape: the round trip through preprocessing and its
    inverse puts the volume back voxel for voxel (identity 'generator')."""
    rng = np.random.default_rng(0)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in (20, 24, 18)], indexing="ij")
    volume = (np.exp(-((grid[0] - 0.4) ** 2 + grid[1] ** 2 + (grid[2] + 0.2) ** 2) / 0.1)
              + 0.3 * (grid[1] > 0.3) + 0.01 * rng.standard_normal(grid[0].shape)).astype(np.float32)
    affine = np.diag([-1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [14.0, -17.0, -16.0]
    path = tmp_path / "mri.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)

    image = generated_pet_nifti(path, (16, 20, 16), lambda x: x, "test MRI")
    out = tmp_path / "pet.nii.gz"
    nib.save(image, out)
    back = nib.load(out)
    assert back.shape == volume.shape
    np.testing.assert_allclose(back.affine, affine)
    data = back.get_fdata()
    assert np.corrcoef(data.ravel(), volume.ravel())[0, 1] > 0.95
    assert np.corrcoef(data.ravel(), volume[::-1].ravel())[0, 1] < 0.8  # orientation matters



def test_a_failed_nifti_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    volume = np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32)
    mri = tmp_path / "mri.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), mri)
    out = tmp_path / "pet.nii.gz"
    write_generated_pet(mri, out, (8, 8, 8), lambda x: x, "test MRI")
    before = out.read_bytes()

    real_save = nib.save

    def save_then_fail(image, filename):  # a disk that fills up half-way through the file
        real_save(image, filename)
        raise OSError("No space left on device")

    monkeypatch.setattr(nib, "save", save_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_generated_pet(mri, out, (8, 8, 8), lambda x: 2 * x, "test MRI")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mri.nii.gz", "pet.nii.gz"]


# ----------------------------------------------------------------------------- end to end
STUDY = """
name: tiny_itcfn
seed: 0
output_dir: {out}
data:
  kind: adni
  root: {root}
  volume_shape: [12, 16, 12]
model: {{embed_dim: 16, dropout: 0.1}}
training:
  epochs: 2
  batch_size: 16
  lr: 0.003
  early_stopping: {{monitor: loss, patience: 5, min_epochs: 1}}
  device: cpu
evaluation:
  bootstrap: 20
  scenarios:
    - {{kind: subset, name: complete, modalities: [mri, pet, clinical]}}
    - {{kind: modality_rate, modality: pet, rates: [0.0, 1.0]}}
methods:
  - {{name: itcfn, id: generated, fused_dim: 8, heads: 2, resnet_planes: [4, 4, 8, 8],
     generator: {{epochs: 2, channels: [4, 8], codebook_size: 32, codebook_dim: 8, adversarial_warmup_epochs: 1}}}}
  - {{name: itcfn, id: zero, pet_fill: zero, fused_dim: 8, heads: 2, resnet_planes: [4, 4, 8, 8]}}
  - {{name: itcfn, id: upper, upper_bound: true, fused_dim: 8, heads: 2, resnet_planes: [4, 4, 8, 8],
     generator: {{epochs: 2, channels: [4, 8], codebook_size: 32, codebook_dim: 8, adversarial_warmup_epochs: 1}}}}
"""


@pytest.fixture(scope="module")
def itcfn_run(tiny_adni_root, tmp_path_factory):
    from robustmm.cli import main

    folder = tmp_path_factory.mktemp("itcfn")
    study = folder / "itcfn.yaml"
    study.write_text(STUDY.format(root=tiny_adni_root, out=folder / "runs"))
    run = folder / "run"
    assert main(["run", str(study), "--out", str(run), "--quiet"]) == 0
    return study, run


def test_generator_stage_runs_its_whole_schedule_at_a_constant_rate(tiny_adni_root, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """The VQ-VAE sits at the template for hundreds of steps before it follows its input, so the
    generator stage must not stop early on that plateau nor decay its rate (study: cosine)."""
    from robustmm.cli import main
    from robustmm.engine.trainer import Trainer

    calls = {}
    fit = Trainer.fit

    def recording(self, module, data, stage, **kwargs):
        calls[stage] = kwargs
        return fit(self, module, data, stage, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording)
    study = tmp_path / "itcfn.yaml"
    study.write_text(STUDY.format(root=tiny_adni_root, out=tmp_path / "runs"))
    assert main(["run", str(study), "--out", str(tmp_path / "run"), "--quiet", "--set",
                 "methods=[{name: itcfn, id: generated, fused_dim: 8, heads: 2, resnet_planes: [4, 4, 8, 8], "
                 "generator: {epochs: 3, channels: [4, 8], codebook_size: 32, codebook_dim: 8}}]"]) == 0
    assert calls["generator"]["patience"] == 3 and calls["generator"]["lr_schedule"] == "none"
    assert calls["classifier"].get("patience") is None and calls["classifier"].get("lr_schedule") is None
    selection = json.loads((tmp_path / "run" / "metrics.json").read_text())["selection"]["generated"]
    assert [s["epochs_run"] for s in selection if s["stage"] == "generator"] == [3]


def test_tiny_itcfn_study_reports_generation_quality_and_the_comparison(itcfn_run) -> None:
    _, run = itcfn_run
    doc = json.loads((run / "metrics.json").read_text())
    auc = {(r["method"], r["scenario"]) for r in doc["records"] if r["metric"] == "auc"}
    for method in ("generated", "zero", "upper"):
        for scenario in ("complete", "pet_missing@0", "pet_missing@1", "pet_missing:AUILC"):
            assert (method, scenario) in auc
    items = doc["methods"]
    quality = items["generated"]["generation_quality_test"]
    assert set(quality) == {"generated", "train_mean_pet", "mri_rescaled", "test_subjects"}
    assert all(set(quality[k]) == {"mae", "psnr", "ssim"} for k in ("generated", "train_mean_pet", "mri_rescaled"))
    assert "perceptual loss off" in items["generated"]["generator"]["perceptual"]
    assert "generator.trust_hub_code: true" in items["generated"]["generator"]["perceptual"]  # the default: off
    assert items["upper"]["generator"]["reused_from"] == "generated"
    assert "generator" not in items["zero"]
    assert (run / "checkpoints" / "generated" / "generator.pt").is_file()
    assert not (run / "checkpoints" / "upper" / "generator.pt").exists()
    assert (run / "plots" / "generated_generated_pet.png").is_file()
    html = (run / "report.html").read_text()
    assert "generated: generated PET (MMG)" in html and "plots/generated_generated_pet.png" in html
    assert "plots/pet_missing_auc.png" in html


def test_generate_command_writes_nifti_with_the_source_mri_affine_and_shape(itcfn_run, tiny_adni_root,
                                                                          tmp_path: Path, capsys) -> None:
    from robustmm.cli import main

    study, run = itcfn_run
    out = tmp_path / "generated"
    assert main(["generate", str(study), "--out", str(out), "--run", str(run), "--all", "--quiet"]) == 0
    assert "SYNTHETIC DATA" in capsys.readouterr().out
    listing = pd.read_csv(out / "generated.csv")
    manifest = pd.read_csv(tiny_adni_root / "manifest.csv")
    assert len(listing) > 0 and listing["has_real_pet"].any() and not listing["has_real_pet"].all()
    for row in listing.head(5).itertuples():
        source = nib.load(row.mri_path)
        generated = nib.load(out / row.generated_pet)
        assert generated.shape == source.shape
        np.testing.assert_allclose(generated.affine, source.affine)
        values = generated.get_fdata()
        assert np.isfinite(values).all() and values.min() >= -1.0 - 1e-5 and values.max() <= 1.0 + 1e-5
    assert set(listing["subject"]) <= set(manifest["PTID"])

    assert main(["generate", str(study), "--out", str(tmp_path / "x"), "--run", str(run), "--method", "zero"]) == 2
    assert "no trained generator" in capsys.readouterr().err


def test_generate_never_trains_into_the_run_it_reads(itcfn_run, tmp_path: Path, capsys) -> None:
    """--run is read only: a run killed while training its generator holds an unfinished
    generator.pt, which generate resumed, training and saving into that other run's folder."""
    from robustmm.cli import main

    study, run = itcfn_run
    other = tmp_path / "killed_run"
    ckpt = torch.load(run / "checkpoints" / "generated" / "generator.pt", weights_only=True)
    ckpt.update(complete=False, epoch=0)  # as saved after the first of two epochs
    (other / "checkpoints" / "generated").mkdir(parents=True)
    torch.save(ckpt, other / "checkpoints" / "generated" / "generator.pt")
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}

    out = tmp_path / "generated"
    assert main(["generate", str(study), "--out", str(out), "--run", str(other), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "has not finished training" in err and str(other) in err and "--resume" in err
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert not out.exists()


def test_generate_with_another_study_than_its_run_advises_leaving_the_run_alone(itcfn_run, tmp_path: Path,
                                                                                 capsys) -> None:
    """The checkpoint check's advice, "delete <RUN>/checkpoints/.../generator.pt to train this stage again,
    or resume ...", would destroy or change the run that --run only reads."""
    from robustmm.cli import main

    study, run = itcfn_run
    out = tmp_path / "generated"
    assert main(["generate", str(study), "--out", str(out), "--run", str(run), "--quiet",
                 "--set", "training.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "belongs to study (training sections)" in err and "delete" not in err
    assert f"generate only reads --run: give the study file and --set / --profile options that run was made " \
           f"with, e.g. robustmm generate {run / 'config.yaml'} --run {run} --out {out}" in err
    assert not out.exists()


def test_generate_refuses_subject_ids_that_differ_only_in_letter_case(tiny_adni_root, tmp_path: Path,
                                                                      capsys) -> None:
    """'100_S_1000' and '100_s_1000' name two files on Linux but one on a macOS or Windows disk, where
    the second subject's generated PET silently replaced the first's. Refused before any training."""
    import shutil

    from robustmm.cli import main

    root = tmp_path / "cohort"
    shutil.copytree(tiny_adni_root, root)
    ids = pd.read_csv(root / "manifest.csv", dtype=str)["PTID"].tolist()
    renamed = {ids[i + 1]: ids[i].lower() for i in range(0, len(ids) - 1, 2)}  # every pair's second: a case twin
    for table in ("manifest.csv", "ADNIMERGE.csv"):
        frame = pd.read_csv(root / table, dtype=str, keep_default_na=False)
        frame["PTID"] = frame["PTID"].replace(renamed)
        frame.to_csv(root / table, index=False)
    study = tmp_path / "itcfn.yaml"
    study.write_text(STUDY.format(root=root, out=tmp_path / "runs"))
    out = tmp_path / "generated"
    assert main(["generate", str(study), "--out", str(out), "--all", "--quiet"]) == 2
    err = capsys.readouterr().err
    pair = re.search(r"subjects '(\S+)' and '(\S+)' differ only in letter case", err)
    assert pair and pair[1] != pair[2] and pair[1].lower() == pair[2] and "rename one of them" in err
    assert not out.exists()


def test_generator_centres_its_input_on_the_training_mean_mri() -> None:
    """With centre_mri the VQ-VAE sees MRI minus the training-set mean MRI: a centred generator fed
    mean + x gives what an uncentred one with the same weights gives for x; the codes agree too."""
    torch.manual_seed(0)
    mri_mean = 0.5 * torch.rand(*SHAPE) - 0.25
    x = torch.rand(3, *SHAPE) - 0.5
    centred = PetGenerator(SHAPE, channels=(8, 8), codebook_size=32, codebook_dim=8, subject_offset=False)
    plain = PetGenerator(SHAPE, channels=(8, 8), codebook_size=32, codebook_dim=8, subject_offset=False,
                         centre_mri=False)
    centred.set_template(torch.zeros(SHAPE), mri_mean)
    centred.init_codebook(mri_mean + x)
    plain.load_state_dict(centred.state_dict())
    centred.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(centred(mri_mean + x)[0], plain(x)[0])
        assert not torch.allclose(centred(x)[0], plain(x)[0])  # the mean is really subtracted
    assert torch.equal(centred.codes(mri_mean + x), plain.codes(x))


def test_generate_writes_its_manifest_and_quality_atomically(tmp_path: Path, monkeypatch) -> None:
    """generated.csv and generation_quality.json were written in place: a run killed mid-write left a
    part of a file. Now a failed write (here: the rename) leaves the previous files whole."""
    import os

    from robustmm.commands import generate

    rows = [{"subject": "S1", "mri_path": "/d/S1.nii.gz", "generated_pet": "S1_PET_generated.nii.gz",
             "has_real_pet": False}]
    generate.write_results(tmp_path, rows, {"generator": {"mae": 0.1}})
    before = {name: (tmp_path / name).read_text() for name in (generate.MANIFEST, "generation_quality.json")}
    assert before[generate.MANIFEST].splitlines()[1] == "S1,/d/S1.nii.gz,S1_PET_generated.nii.gz,False"
    assert json.loads(before["generation_quality.json"]) == {"generator": {"mae": 0.1}}

    def killed(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError):
        generate.write_results(tmp_path, rows * 3, {"generator": {"mae": 0.2}})
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_text() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file left



def test_perceptual_loss_runs_the_hub_cache_code_only_after_an_opt_in(tmp_path: Path, monkeypatch) -> None:
    """MONAI's PerceptualLoss calls torch.hub.load(trust_repo=True), which runs the hubconf.py in the
    torch hub cache: it ran whenever that folder existed, without the user asking for it."""
    from robustmm.methods.itcfn.generator import offline_perceptual_loss

    repo = tmp_path / "Project-MONAI_perceptual-models_main"
    repo.mkdir()
    (repo / "hubconf.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('ran').write_text('hubconf.py ran')\n"
        "def medicalnet_resnet10_23datasets(*args, **kwargs):\n"
        "    raise RuntimeError('no weights here')\n")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    network = "medicalnet_resnet10_23datasets"
    assert ITCFNOptions().generator.trust_hub_code is False
    loss, status = offline_perceptual_loss(network, trust_hub_code=False)
    assert loss is None and not (repo / "ran").exists()
    assert status.startswith(f"perceptual loss off: MONAI builds it by running the Python code (hubconf.py) of {repo}")
    assert "set the method option generator.trust_hub_code: true" in status

    loss, status = offline_perceptual_loss(network, trust_hub_code=True)  # opted in: MONAI's own loading
    assert loss is None and (repo / "ran").read_text() == "hubconf.py ran"
    assert status == f"perceptual loss off: loading '{network}' from {tmp_path} failed (RuntimeError: no weights here)"

def test_generator_note_in_the_report_is_html_text(tmp_path: Path, monkeypatch) -> None:
    """The perceptual-loss status quotes the exception that turned it off; a URLError reads
    '<urlopen error ...>', which the page must show, not take for a tag."""
    from types import SimpleNamespace

    from robustmm.methods.itcfn import method as itcfn_method

    monkeypatch.setattr(itcfn_method, "mid_slice_figure", lambda *args, **kwargs: None)
    volume = torch.zeros(1, 1, 2, 2, 2)
    batch = Batch(inputs={"mri": volume, "pet": volume}, present={"mri": torch.ones(1, dtype=torch.bool),
                                                                   "pet": torch.ones(1, dtype=torch.bool)},
                  meta={"subject": ["s1"]})
    status = "perceptual loss off: loading 'x' failed (URLError: <urlopen error [Errno -3] no network>)"
    method = SimpleNamespace(generator=object(), options=SimpleNamespace(mri="mri", pet="pet"),
                             quality={"test_subjects": 1, "generated": {"mae": 0.1, "psnr": 20.0, "ssim": 0.5}},
                             generator_info={"perceptual": status}, generate_pet=lambda mri: mri,
                             context=SimpleNamespace(method_id="generated"))
    data = SimpleNamespace(loader=lambda split, shuffle: [batch], dataset=SimpleNamespace(synthetic=True))
    [(_, body)] = ITCFN.report_sections(method, data, tmp_path)
    assert "(URLError: &lt;urlopen error [Errno -3] no network&gt;)" in body and "<urlopen" not in body

"""Feature-modulation adaptation (robustmm.methods.modulation, specs/modulation.md)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robustmm.config.loader import load_study
from robustmm.config.schema import EarlyStoppingConfig, MethodConfig, ModelConfig, SplitConfig, TrainingConfig
from robustmm.data.base import MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec, collate
from robustmm.data.datamodule import DataModule
from robustmm.engine.trainer import Trainer
from robustmm.errors import ConfigError, DataError
from robustmm.methods import create_method
from robustmm.methods.base import MethodContext
from robustmm.methods.baseline import CompleteOnly, CompleteOnlyOptions
from robustmm.methods.modulation import ModulatedNetwork, Modulation, ModulationOptions, find_sites
from robustmm.methods.modulation.method import resolve_settings
from robustmm.models.network import MultimodalNet

REPO = Path(__file__).resolve().parents[1]
TASK = TaskSpec("binary", 2, ("neg", "pos"))
SPECS = {
    "vol": ModalitySpec("vol", "volume", (1, 6, 6, 6)),
    "tab": ModalitySpec("tab", "table", (5,)),
    "aux": ModalitySpec("aux", "table", (4,)),
}
SMALL = ModelConfig(embed_dim=8, trunk_hidden=8, dropout=0.1,
                    volume={"channels": [4, 6], "strides": [2, 2], "num_res_units": 1}, table={"hidden": [8]})
VARIANTS = ["ssf", "film", "bitfit", "lora"]
PER_PATTERN_VARIANTS = ["ssf", "bitfit", "lora"]


class TinyCohort(MultimodalDataset):
    """Three modalities with a planted signal; ``aux`` is naturally missing for every 4th subject."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.modalities = SPECS
        self.task = TASK
        self.root = Path("tiny-cohort")
        self.vol = torch.from_numpy(rng.normal(size=(n, 1, 6, 6, 6)).astype(np.float32))
        self.tab = torch.from_numpy(rng.normal(size=(n, 5)).astype(np.float32))
        self.aux = torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32))
        signal = self.vol.mean(dim=(1, 2, 3, 4)) * 4 + self.tab[:, 0] + self.aux[:, 0]
        self.y = (signal > signal.median()).long()
        self.has_aux = np.arange(n) % 4 != 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": {"vol": self.vol[i], "tab": self.tab[i], "aux": self.aux[i]},
                "present": {"vol": True, "tab": True, "aux": bool(self.has_aux[i])},
                "target": int(self.y[i]), "meta": {"subject": f"s{i:03d}"}}

    def subject_ids(self) -> list[str]:
        return [f"s{i:03d}" for i in range(len(self))]

    def natural_presence(self) -> dict[str, np.ndarray]:
        n = len(self)
        return {"vol": np.ones(n, bool), "tab": np.ones(n, bool), "aux": self.has_aux.copy()}

    def stratify_labels(self) -> np.ndarray:
        return self.y.numpy()


def batch_of(n: int, present: dict[str, list[bool]] | None = None, seed: int = 0):
    data = TinyCohort(n, seed)
    batch = collate([data[i] for i in range(n)])
    if present is not None:
        batch = batch.with_masks({m: torch.tensor(v) for m, v in present.items()})
    return batch


def mixed_batch():
    """Eight samples covering five availability patterns (each at least once)."""
    return batch_of(8, {"vol": [1, 1, 0, 1, 0, 1, 1, 0], "tab": [1, 0, 1, 1, 1, 1, 0, 1],
                        "aux": [1, 1, 1, 0, 0, 1, 0, 1]})


def base_net(seed: int = 0, fill: str = "zero") -> MultimodalNet:
    torch.manual_seed(seed)
    net = MultimodalNet(SPECS, TASK, SMALL, fill=fill)
    with torch.no_grad():  # non-trivial norm affines and biases, so modulation has something to change
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def modulated(variant: str, base: nn.Module | None = None, **kw) -> ModulatedNetwork:
    layers = {"ssf": ["linear", "norm", "attention"], "film": ["linear", "norm"],
              "bitfit": ["linear", "conv", "norm"], "lora": ["linear", "conv"]}[variant]
    return ModulatedNetwork(base or base_net(), list(SPECS), variant, layers, **kw).eval()


def randomize(params, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))


# ----------------------------------------------------------------------------- identity
@pytest.mark.parametrize("variant", VARIANTS)
def test_identity_modulation_reproduces_the_base_output_exactly(variant: str) -> None:
    base = base_net()
    net = modulated(variant, base)
    batch = batch_of(6, {m: [True] * 6 for m in SPECS})  # every modality present
    with torch.no_grad():
        want, got = base(batch), net(batch)
    for key in ("logits", "features", "fused"):
        assert torch.equal(got[key], want[key]), key
    mixed = mixed_batch()
    with torch.no_grad():  # per-pattern groups run separately: equal up to float reassociation
        torch.testing.assert_close(net(mixed)["logits"], base(mixed)["logits"], rtol=1e-5, atol=1e-6)


def test_the_given_base_network_is_never_changed() -> None:
    base = base_net()
    before = copy.deepcopy(base.state_dict())
    net = modulated("lora", base)
    randomize(net.modulation.parameters(), 1)
    net(mixed_batch())
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert not base.encoders["tab"].proj._forward_hooks  # hooks live on the private copy only
    assert all(not p.requires_grad for p in net.base.parameters())


# ----------------------------------------------------------------------------- per-pattern selection
@pytest.mark.parametrize("variant", PER_PATTERN_VARIANTS)
def test_a_sample_depends_only_on_its_own_patterns_parameters(variant: str) -> None:
    net = modulated(variant)
    randomize(net.modulation.parameters(), 0)  # away from the identity, so every set matters
    batch = mixed_batch()
    indices = net.pattern_indices(batch.present)
    with torch.no_grad():
        reference = net(batch)["logits"]
    for pattern in indices.unique().tolist():
        own = indices == pattern
        others = [p for q in range(len(net.patterns)) if q != pattern for p in net.modulation.pattern_parameters(q)]
        randomize(others, 10 + pattern)
        with torch.no_grad():
            after_others = net(batch)["logits"]
        assert torch.equal(after_others[own], reference[own]), net.patterns[pattern]
        randomize(net.modulation.pattern_parameters(pattern), 20 + pattern)
        with torch.no_grad():
            after_own = net(batch)["logits"]
        assert not torch.allclose(after_own[own], after_others[own]), net.patterns[pattern]
        assert torch.equal(after_own[~own], after_others[~own])
        reference = after_own


def test_patterns_are_read_from_the_availability_bitmask() -> None:
    net = modulated("ssf")
    batch = mixed_batch()
    got = [net.patterns[i] for i in net.pattern_indices(batch.present).tolist()]
    want = [tuple(m for m in SPECS if bool(batch.present[m][i])) for i in range(batch.size)]
    assert got == want
    nothing = batch.with_masks({m: torch.zeros(batch.size, dtype=torch.bool) for m in SPECS})
    assert net.pattern_indices(nothing.present).tolist() == [-1] * batch.size


def test_film_is_one_shared_generator_of_the_availability_mask() -> None:
    net = modulated("film")
    assert net.modulation.pattern_parameters(0) == net.modulation.pattern_parameters(6)
    randomize(net.modulation.parameters(), 3)
    batch = mixed_batch()
    with torch.no_grad():
        a = net(batch)["logits"]
        net.modulation.pattern_masks[0, 0] = 1.0  # pattern ('vol',) now looks like its neighbour
        b = net(batch)["logits"]
    changed = net.pattern_indices(batch.present) == 0
    assert torch.equal(a[~changed], b[~changed])


# ----------------------------------------------------------------------------- generic wrapping
class Volumetric(nn.Module):
    """A segmentation-like network: 3-D convs, batch/group norms, a transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({m: nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.PReLU(),
                                                        nn.Conv3d(4, 8, 3, stride=2, padding=1), nn.GroupNorm(2, 8))
                                       for m in ("t1", "t2")})
        self.fusion = nn.Sequential(nn.Conv3d(16, 8, 1), nn.ConvTranspose3d(8, 4, 2, stride=2))
        self.head = nn.Conv3d(4, 2, 1)

    def forward(self, batch):
        maps = [self.encoders[m](batch.inputs[m]) * batch.present[m].view(-1, 1, 1, 1, 1) for m in ("t1", "t2")]
        return {"logits": self.head(self.fusion(torch.cat(maps, 1))), "maps": maps}


def volumetric_batch():
    from robustmm.data.batch import Batch

    torch.manual_seed(0)
    return Batch(inputs={"t1": torch.randn(4, 1, 8, 8, 8), "t2": torch.randn(4, 1, 8, 8, 8)},
                 present={"t1": torch.tensor([True, True, False, True]), "t2": torch.tensor([True, False, True, True])},
                 meta={"subject": list("abcd")})


@pytest.mark.parametrize("variant", VARIANTS)
def test_wrapping_is_generic_over_3d_convolutions_and_norms(variant: str) -> None:
    base = Volumetric().eval()
    layers = ["linear", "conv", "norm", "attention"]
    net = ModulatedNetwork(base, ["t1", "t2"], variant, layers, targets=["encoders", "fusion"]).eval()
    sites = {site.name: site.kind for site in net.modulation.sites.values()}
    if variant == "lora":  # low-rank updates of plain convolutions only
        assert sites == {"encoders.t1.0": "conv", "encoders.t1.3": "conv", "encoders.t2.0": "conv",
                         "encoders.t2.3": "conv", "fusion.0": "conv"}
    else:
        assert sites == {f"encoders.{m}.{i}": k for m in ("t1", "t2")
                         for i, k in ((0, "conv"), (1, "norm"), (3, "conv"), (4, "norm"))} | {
            "fusion.0": "conv", "fusion.1": "conv"}
    batch = volumetric_batch()
    with torch.no_grad():
        identity = net(batch)
        torch.testing.assert_close(identity["logits"], base(batch)["logits"], rtol=1e-5, atol=1e-6)
        randomize(net.modulation.parameters(), 5)
        moved = net(batch)
    assert moved["logits"].shape == (4, 2, 8, 8, 8) and len(moved["maps"]) == 2
    assert not torch.allclose(moved["logits"], identity["logits"])


def test_segmentation_network_of_the_framework_is_wrapped_when_present() -> None:
    segmentation = pytest.importorskip("robustmm.models.segmentation")
    specs = {m: ModalitySpec(m, "volume", (1, 8, 8, 8)) for m in ("t1", "flair")}
    cfg = ModelConfig(volume={"channels": [4, 8], "strides": [2, 2], "num_res_units": 1})
    try:
        base = segmentation.MultiEncoderSegNet(specs, TaskSpec("segmentation", 3), cfg).eval()
    except Exception as exc:  # the segmentation network is in flight (issue 9)
        pytest.skip(f"segmentation network not constructible here: {exc}")
    net = ModulatedNetwork(base, list(specs), "ssf", ["linear", "conv", "norm"]).eval()
    assert net.targets == ["fusions", "decoder"]  # the defaults: where modalities meet and after
    batch = volumetric_batch()
    batch.inputs = {"t1": batch.inputs["t1"], "flair": batch.inputs["t2"]}
    batch.present = {"t1": batch.present["t1"], "flair": batch.present["t2"]}
    with torch.no_grad():
        identity = net(batch)["logits"]
        torch.testing.assert_close(identity, base(batch)["logits"], rtol=1e-5, atol=1e-6)
        randomize(net.modulation.parameters(), 2)
        assert not torch.allclose(net(batch)["logits"], identity)


# ----------------------------------------------------------------------------- parameter fraction
def adni_default_model_context() -> MethodContext:
    cfg = load_study(REPO / "studies" / "adni_mci.yaml")
    shape = (1, *cfg.data.volume_shape)
    specs = {"mri": ModalitySpec("mri", "volume", shape), "pet": ModalitySpec("pet", "volume", shape),
             "clinical": ModalitySpec("clinical", "table", (len(cfg.data.clinical_columns),))}
    return MethodContext("modulation", specs, TASK, cfg.model, cfg.training, cfg.seed)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_default_variant_is_under_one_percent_per_pattern_and_modulates_the_trunk(variant: str) -> None:
    """The paper's claim (< 1 % extra parameters per availability pattern) holds for every
    variant's defaults on the default ADNI model; FiLM's one shared generator counts whole."""
    context = adni_default_model_context()
    method = Modulation(ModulationOptions(variant=variant), context)
    method.net = method.wrap(MultimodalNet(context.modalities, context.task, context.model))
    items = method.report_items()
    assert items["base_parameters"] == sum(p.numel() for p in method.net.base.parameters())
    if variant != "film":
        assert items["parameters_per_pattern"] * items["patterns"] == items["parameters_all_patterns"]
    assert 0 < items["trainable_fraction"] < 0.01
    assert items["targets"] == (["encoders.*.proj"] if variant == "ssf" else []) + ["fusion", "trunk"]
    assert any(site.startswith("trunk") for site in method.net.modulation.sites)
    if variant == "ssf":  # each encoder's output layer: a pattern can re-weight one modality against another
        assert {f"encoders/{m}/proj" for m in context.modalities} <= set(method.net.modulation.sites)


# ----------------------------------------------------------------------------- training
def tiny_training(tmp_path: Path, epochs: int = 2, lr: float = 0.01) -> tuple[DataModule, TrainingConfig]:
    data = DataModule(TinyCohort(64), SplitConfig(val_fraction=0.2, test_fraction=0.2), seed=0, batch_size=16)
    cfg = TrainingConfig(epochs=epochs, batch_size=16, lr=lr, device="cpu", amp=False, warmup_epochs=0,
                         early_stopping=EarlyStoppingConfig(monitor="loss", patience=5, min_epochs=1))
    return data, cfg


def test_training_changes_only_modulation_and_the_base_stays_bit_identical(tmp_path: Path) -> None:
    data, cfg = tiny_training(tmp_path)
    context = MethodContext("complete_only", SPECS, TASK, SMALL, cfg, seed=0)
    torch.manual_seed(0)
    complete_only = CompleteOnly(CompleteOnlyOptions(), context)
    complete_only.fit(data, Trainer(cfg, tmp_path / "checkpoints" / "complete_only", 0, progress=False))
    checkpoint_file = tmp_path / "checkpoints" / "complete_only" / "complete_only.pt"
    saved = torch.load(checkpoint_file, map_location="cpu", weights_only=True)["module"]
    saved = {k[len("net."):]: v for k, v in saved.items() if k.startswith("net.")}

    mod_context = MethodContext("modulation", SPECS, TASK, SMALL, cfg, seed=0, trained={"complete_only": complete_only})
    method = create_method(MethodConfig(name="modulation", epochs=3, lr=0.05), mod_context)
    method.fit(data, Trainer(cfg, tmp_path / "checkpoints" / "modulation", 0, progress=False))

    base_state = method.net.base.state_dict()
    assert base_state.keys() == saved.keys()
    assert all(torch.equal(base_state[k], saved[k]) for k in saved), "a base parameter or buffer changed"
    assert all(torch.equal(v, saved[k]) for k, v in complete_only.net.state_dict().items())
    trained = [p for p in method.net.modulation.parameters() if p.abs().sum() > 0]
    assert trained, "training left every modulation parameter at the identity"
    items = method.report_items()
    assert items["base"] == "the study's complete_only network"
    assert set(items["validation_auc"]) == {"+".join(p) for p in method.net.patterns}
    (title, body), = method.report_sections(data, tmp_path)
    assert "modulation" in title and "%" in body

    # the same base from the checkpoint file, through the base_checkpoint option
    alone = MethodContext("modulation", SPECS, TASK, SMALL, cfg, seed=0)
    from_file = create_method(MethodConfig(name="modulation", base_checkpoint=str(checkpoint_file), epochs=1), alone)
    from_file.fit(data, Trainer(cfg, tmp_path / "checkpoints" / "from_file", 0, progress=False))
    assert all(torch.equal(v, saved[k]) for k, v in from_file.net.base.state_dict().items())

    # a fitted method's state restores the same predictions
    restored = create_method(MethodConfig(name="modulation"), alone)
    restored.load_state_dict(method.state_dict())
    batch = mixed_batch()
    with torch.no_grad():
        assert torch.equal(restored.eval().predict(batch)["score"], method.eval().predict(batch)["score"])


def test_modulation_recovers_a_missing_modalitys_constant_contribution() -> None:
    """Known answer: 'aux' is constant in the data, so zero-filling it only moves the trunk's
    input by a constant; a shift after the other encoders' output layers can undo that exactly,
    so the pattern ('vol', 'tab') can learn to reproduce the complete-data outputs."""
    data = TinyCohort(32, seed=1)
    data.aux[:] = 1.0
    batch = collate([data[i] for i in range(32)])
    batch = batch.with_masks({m: torch.ones(32, dtype=torch.bool) for m in SPECS})
    base = base_net(seed=2)
    with torch.no_grad():
        complete = base(batch)["logits"]
    no_aux = batch.with_masks({**batch.present, "aux": torch.zeros(32, dtype=torch.bool)})
    net = ModulatedNetwork(base, list(SPECS), "ssf", ["linear", "norm"])
    gap = lambda b: (net(b)["logits"] - complete).pow(2).mean()  # noqa: E731
    with torch.no_grad():
        before = float(gap(no_aux))
    pattern = net.patterns.index(("vol", "tab"))
    optimizer = torch.optim.Adam(net.modulation.pattern_parameters(pattern), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        gap(no_aux).backward()
        optimizer.step()
    with torch.no_grad():
        after, complete_after = float(gap(no_aux)), float(gap(batch))
    assert before > 1e-3, "zero-filling the constant modality should move the frozen base's outputs"
    assert after < 0.2 * before  # the exact optimum is 0; Adam gets most of the way in 200 steps
    assert complete_after == 0.0  # the complete pattern's parameters were not trained


def _gap_after_adam(lr: float, steps: int = 100) -> tuple[float, float]:
    """Known answer needing an O(1) move: the target is the base network with one channel of the
    trunk's last linear layer negated (weight and bias), which ssf on that layer reproduces
    exactly with scale -1 (Δγ = -2, β = 0). Returns the squared gap to the target before and
    after ``steps`` Adam steps at ``lr`` on ssf's default layer kinds in the trunk (more sites,
    e.g. the encoders' outputs, would open other routes to the target and blur what lr measures)."""
    data = TinyCohort(32, seed=1)
    batch = collate([data[i] for i in range(32)])
    batch = batch.with_masks({m: torch.ones(32, dtype=torch.bool) for m in SPECS})
    base = base_net(seed=2)
    flipped = copy.deepcopy(base)
    with torch.no_grad():
        for net in (base, flipped):
            net.head.weight[:, 0] = torch.tensor([-3.0, 3.0])  # the head reads channel 0 strongly
        flipped.trunk.net[4].weight[0].neg_()
        flipped.trunk.net[4].bias[0].neg_()
        target = flipped(batch)["logits"]
    settings = resolve_settings(ModulationOptions(variant="ssf"))
    net = ModulatedNetwork(base, list(SPECS), "ssf", list(settings.layers), targets=["trunk"])
    gap = lambda b: (net(b)["logits"] - target).pow(2).mean()  # noqa: E731
    with torch.no_grad():
        before = float(gap(batch))
    optimizer = torch.optim.Adam(net.modulation.pattern_parameters(net.patterns.index(tuple(SPECS))), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        gap(batch).backward()
        optimizer.step()
    with torch.no_grad():
        return before, float(gap(batch))


def test_default_ssf_learning_rate_moves_the_modulation_far_enough_in_a_short_schedule() -> None:
    """Issue 15: at the study's lr (0.002, the old default) Adam moves each scale/shift by at most
    0.002 per step, so in the ~200 steps of the ADNI schedule a channel can neither flip sign nor
    shift by O(1) (seed 0: MRI-alone validation AUC 0.47 at lr 0.002, 0.68 at 0.1; linear-probe
    ceiling 0.70). The default ssf lr (robustmm/presets/methods/modulation.yaml) must close, in 100
    steps, a gap that needs a channel's scale to go from 1 to -1; the old default must not."""
    settings = resolve_settings(ModulationOptions(variant="ssf"))
    assert settings.lr is not None, "ssf needs its own learning rate; the study's lr is far too small"
    before, after = _gap_after_adam(settings.lr)
    assert before > 1.0
    assert after < 0.1 * before  # lr 0.01: 0.06 of the gap left; 0.1: 0.007
    _, after_old = _gap_after_adam(0.002)
    assert after_old > 0.2 * before  # lr 0.002: 0.27 of the gap left


def test_each_pattern_keeps_its_own_best_validation_epoch_or_the_base(monkeypatch) -> None:
    """Per-pattern selection (issue 15): a pattern keeps the parameters of the epoch with its own
    lowest validation loss; a pattern that never beats the base network's validation loss keeps the
    identity; the trainer sees the mean of the selected losses (so it only improves when some
    pattern does). With one shared epoch pattern 0 would get epoch 1's parameters (mean loss 0.45
    there vs 0.5 at epoch 0)."""
    import types

    from robustmm.methods.modulation import method as method_module
    from robustmm.methods.modulation.method import ModulationTraining
    from robustmm.methods.task import task_adapter
    from robustmm.missing.scenarios import build_scenario
    from robustmm.config.schema import RandomSubsetsScenario

    net = modulated("ssf")
    names = ["+".join(p) for p in net.patterns]
    context = MethodContext("modulation", SPECS, TASK, SMALL, TrainingConfig(device="cpu"), seed=0)
    module = ModulationTraining(net, task_adapter(TASK), context,
                                build_scenario(RandomSubsetsScenario(kind="random_subsets"), list(SPECS)),
                                base_scores={n: {"loss": 0.5, "auc": 0.7} for n in names}, select_on="monitor")
    assert module.monitor == "loss"  # the study's training.selection.monitor (default primary: the AUC)
    losses = {0: {0: 0.40, 1: 0.60, 2: 0.60}, 1: {0: 0.45, 1: 0.30, 2: 0.70}}  # other patterns: 0.5, a tie
    kept = {}
    for epoch in (0, 1):
        randomize(net.modulation.parameters(), seed=epoch)  # the parameters after this epoch's training
        kept[epoch] = [[p.clone() for p in net.modulation.pattern_parameters(i)] for i in range(len(names))]
        scores = {n: {"loss": losses[epoch].get(i, 0.5), "auc": 0.7} for i, n in enumerate(names)}
        monkeypatch.setattr(method_module, "pattern_validation", lambda *args, scores=scores, **kw: scores)
        summary = module.validation_metrics(None, types.SimpleNamespace(epoch=epoch, device=torch.device("cpu")))
    assert summary["loss"] == pytest.approx(np.mean([0.40, 0.30] + [0.5] * (len(names) - 2)))
    module.apply_selection()
    assert module.selected_epoch.tolist() == [0, 1] + [-1] * (len(names) - 2)
    for i, epoch in ((0, 0), (1, 1)):
        assert all(torch.equal(p, q) for p, q in zip(net.modulation.pattern_parameters(i), kept[epoch][i]))
    for i in range(2, len(names)):  # never better than the base: back to the identity
        assert all(bool((p == 0).all()) for p in net.modulation.pattern_parameters(i))
    # the selection is in the module's state (a trainer checkpoint restores it)
    assert {"selected", "selected_score", "selected_epoch"} <= set(module.state_dict())


@pytest.mark.parametrize("later_auc,keeps_base", [(0.6, True), (0.95, False)])
def test_film_selects_on_select_on_and_falls_back_to_the_base(tmp_path: Path, monkeypatch, caplog,
                                                             later_auc: float, keeps_base: bool) -> None:
    """FiLM's generator is shared, so it keeps one epoch for every pattern; it used to monitor the
    study's monitor (loss here) instead of select_on (the AUC) and had no way back to the base.
    Known answer: the base network scores AUC 0.9 on every pattern; if every trained epoch scores
    0.6 the identity comes back, if they score 0.95 the trained generator is kept."""
    import logging

    from robustmm.methods.modulation import method as method_module

    data, cfg = tiny_training(tmp_path, epochs=2)  # the study's monitor: loss
    calls = []

    def scores(predict, data, task, device, seed, patterns):
        calls.append(1)
        auc = 0.9 if len(calls) == 1 else later_auc  # the first call scores the untrained base
        return {"+".join(p): {"auc": auc, "loss": 0.1 * len(calls)} for p in patterns}

    monkeypatch.setattr(method_module, "pattern_validation", scores)
    complete_only = CompleteOnly(CompleteOnlyOptions(), MethodContext("complete_only", SPECS, TASK, SMALL, cfg, seed=0))
    complete_only.net = base_net()
    context = MethodContext("mod_film", SPECS, TASK, SMALL, cfg, seed=0, trained={"complete_only": complete_only})
    method = create_method(MethodConfig(name="modulation", variant="film", lr=0.05), context)
    with caplog.at_level(logging.INFO, logger="robustmm"):
        method.fit(data, Trainer(cfg, tmp_path / "checkpoints" / "mod_film", 0, progress=False))
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mod_film epoch")]
    assert epochs and all("val auc" in m for m in epochs), epochs  # select_on: primary, not the study's loss
    kept = method.selected_epochs
    assert set(kept) == {"+".join(p) for p in method.net.patterns}
    batch = mixed_batch()
    with torch.no_grad():
        same_as_base = torch.allclose(method.eval().predict(batch)["score"],
                                      method.task.outputs(base_net().eval()(batch)["logits"])["score"], atol=1e-6)
    if keeps_base:
        assert set(kept.values()) == {-1}
        assert same_as_base  # the identity modulation: the base network's outputs
        assert all(v["modulated"] == v["base"] == 0.9 for v in method.validation.values())
    else:
        assert set(kept.values()) == {0}  # the first epoch reaches 0.95; the second only ties it
        assert not same_as_base
        assert all(v["modulated"] == 0.95 for v in method.validation.values())


# ----------------------------------------------------------------------------- configuration errors
def test_option_errors_name_the_problem(tmp_path: Path) -> None:
    context = MethodContext("modulation", SPECS, TASK, SMALL, TrainingConfig(device="cpu"), seed=0)
    with pytest.raises(ConfigError, match="rank"):
        create_method(MethodConfig(name="modulation", variant="ssf", rank=4), context)
    with pytest.raises(ConfigError, match="variant"):
        create_method(MethodConfig(name="modulation", variant="adapter"), context)
    method = create_method(MethodConfig(name="modulation", targets=["encoder"]), context)
    with pytest.raises(ConfigError, match=r"parts are \['encoders', 'fill', 'fusion', 'trunk', 'head'\]"):
        method.wrap(base_net())
    missing = create_method(MethodConfig(name="modulation", base_checkpoint=str(tmp_path / "nope.pt")), context)
    with pytest.raises(ConfigError, match="does not exist"):
        missing.fit(None, None)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    damaged = create_method(MethodConfig(name="modulation", base_checkpoint=str(corrupt)), context)
    with pytest.raises(DataError) as err:
        damaged.fit(None, None)
    assert str(err.value).count(str(corrupt)) == 1, err.value  # the path was printed twice
    assert "base_checkpoint" in str(err.value)
    lora = create_method(MethodConfig(name="modulation", variant="lora", layers=["norm"]), context)
    with pytest.raises(ConfigError, match="finds no layer"):
        lora.wrap(base_net())
    pattern = create_method(MethodConfig(name="modulation", targets=["encoders.*.projection"]), context)
    with pytest.raises(ConfigError, match=r"\['encoders\.\*\.projection'\] name no part"):
        pattern.wrap(base_net())


def test_a_target_pattern_names_layers_by_their_dotted_path() -> None:
    """'encoders.*.proj' is the output layer of every encoder and nothing else; a pattern that
    matches a module and one inside it names each layer once."""
    net = base_net()
    names = [site.name for site, _ in find_sites(net, ["encoders.*.proj", "trunk"], ["linear", "norm"])]
    encoders = [n for n in names if n.startswith("encoders.")]
    assert encoders == [f"encoders.{m}.proj" for m in net.encoders]
    assert names[len(encoders):] == [site.name for site, _ in find_sites(net, ["trunk"], ["linear", "norm"])]
    nested = [site.name for site, _ in find_sites(net, ["encoders.*"], ["linear"])]
    assert nested == [site.name for site, _ in find_sites(net, ["encoders"], ["linear"])]


def test_sites_skip_layers_inside_attention_and_count_shared_layers_once() -> None:
    cfg = SMALL.model_copy(update={"fusion": "attention", "volume": SMALL.volume.model_copy(update={"shared": True})})
    specs = {"a": ModalitySpec("a", "volume", (1, 6, 6, 6)), "b": ModalitySpec("b", "volume", (1, 6, 6, 6))}
    net = MultimodalNet(specs, TASK, cfg)
    names = [site.name for site, _ in find_sites(net, ["encoders", "fusion"], ["linear", "attention"])]
    assert "fusion.layer.self_attn" in names and not any("out_proj" in n for n in names)
    assert not any(n.startswith("encoders.b.") for n in names)  # the shared encoder appears under 'a' only
    modulated_net = ModulatedNetwork(net, list(specs), "ssf", ["linear", "norm", "attention"]).eval()
    randomize(modulated_net.modulation.parameters(), 4)
    batch = collate([{"inputs": {"a": torch.randn(1, 6, 6, 6), "b": torch.randn(1, 6, 6, 6)},
                      "present": {"a": True, "b": i % 2 == 0}, "target": 0, "meta": {"subject": str(i)}}
                     for i in range(4)])
    with torch.no_grad():
        assert not torch.allclose(modulated_net(batch)["logits"], net.eval()(batch)["logits"])


# ----------------------------------------------------------------------------- a whole study
@pytest.mark.slow
def test_study_evaluates_modulation_on_every_subset_with_its_parameter_fraction(tiny_study: Path) -> None:
    from robustmm.study import run_study

    cfg = load_study(tiny_study, overrides=[
        "methods=[{name: complete_only}, {name: dropout_baseline}, {name: modulation, id: ssf}]",
        "evaluation.scenarios=[{kind: all_subsets}]", "training.epochs=2"])
    result = run_study(cfg, progress=False)
    subsets = {"mri", "pet", "clinical", "mri+pet", "mri+clinical", "pet+clinical", "mri+pet+clinical"}
    evaluated = {(r["method"], r["scenario"]) for r in result.records if r["metric"] == "auc"}
    assert {(m, s) for m in ("complete_only", "dropout_baseline", "ssf") for s in subsets} <= evaluated
    saved = torch.load(result.run_dir / "checkpoints" / "complete_only" / "complete_only.pt", map_location="cpu",
                       weights_only=True)["module"]
    base = result.methods["ssf"].net.base.state_dict()
    assert all(torch.equal(v.cpu(), saved[f"net.{k}"]) for k, v in base.items())
    doc = (result.run_dir / "metrics.json").read_text()
    assert '"trainable_fraction"' in doc
    assert "Feature modulation: ssf" in (result.run_dir / "report.html").read_text()

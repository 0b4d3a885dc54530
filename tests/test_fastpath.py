"""The accelerator fast path, exercised on the CPU: reused loaders with persistent workers,
device loss accumulation, autocast evaluation (bf16), channels-last-3d, a cohort kept on the
device, training masks drawn before the host-to-device copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustmm.config.schema import AdniDataConfig, SplitConfig
from robustmm.data.adni import AdniDataset
from robustmm.data.datamodule import DataModule
from robustmm.engine.fastpath import DeviceCohort, LossMeter, eval_autocast, prepare_network, to_device
from robustmm.errors import TrainingError


@pytest.fixture(scope="module")
def adni(tiny_adni_root: Path) -> AdniDataset:
    return AdniDataset(AdniDataConfig(root=tiny_adni_root, volume_shape=(8, 8, 8)), progress=False)


def _subjects(loader) -> list[str]:
    return [s for batch in loader for s in batch.subjects]


def test_reused_loader_keeps_workers_and_the_epoch_order(adni) -> None:
    fresh = DataModule(adni, SplitConfig(), 0, batch_size=8, num_workers=0)
    reused = DataModule(adni, SplitConfig(), 0, batch_size=8, num_workers=1)
    first = reused.loader("train", shuffle=True, epoch=0)
    assert first.persistent_workers
    for epoch in (0, 1, 2):
        loader = reused.loader("train", shuffle=True, epoch=epoch)
        assert loader is first  # one loader, its worker kept alive
        assert _subjects(loader) == _subjects(fresh.loader("train", shuffle=True, epoch=epoch))
    assert _subjects(reused.loader("val")) == _subjects(fresh.loader("val"))
    view = reused.complete_cases()
    assert view.loader("train", shuffle=True) is not first
    import copy

    from robustmm.data.datamodule import Splits

    other = copy.copy(reused)  # a view made the way ITCFN makes one (shares the loader cache)
    other.splits = Splits(reused.splits.train[:8], reused.splits.val, reused.splits.test)
    assert len(_subjects(other.loader("train", shuffle=True, epoch=0))) == 8


def test_loss_meter_reports_the_first_non_finite_step() -> None:
    meter = LossMeter(torch.device("cpu"))
    for step, value in enumerate([1.0, 3.0, float("nan"), 2.0, float("inf")]):
        meter.add(torch.tensor(value), step)
    with pytest.raises(TrainingError, match="loss became nan at epoch 4, step 2"):
        meter.check("stage", 4)
    ok = LossMeter(torch.device("cpu"))
    for step, value in enumerate([1.0, 2.0, 6.0]):
        ok.add(torch.tensor(value), step)
    ok.check("stage", 0)
    assert ok.mean() == pytest.approx(3.0)


def _net():
    from robustmm.config.schema import ModelConfig
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec
    from robustmm.models.network import MultimodalNet

    specs = {"mri": ModalitySpec("mri", "volume", (1, 8, 8, 8)), "tab": ModalitySpec("tab", "table", (5,))}
    cfg = ModelConfig.model_validate({"embed_dim": 8, "trunk_hidden": 8,
                                      "volume": {"channels": [4, 8], "strides": [2, 2], "num_res_units": 1}})
    torch.manual_seed(0)
    return MultimodalNet(specs, TaskSpec(kind="binary", num_classes=2), cfg).eval(), specs


def _batch(n=6):
    from robustmm.data.batch import Batch

    g = torch.Generator().manual_seed(1)
    return Batch(inputs={"mri": torch.randn(n, 1, 8, 8, 8, generator=g), "tab": torch.randn(n, 5, generator=g)},
                 present={"mri": torch.tensor([True, False] * (n // 2)), "tab": torch.ones(n, dtype=torch.bool)},
                 valid={"tab": torch.ones(n, 5, dtype=torch.bool)}, feature_mask={"tab": torch.ones(n, 5, dtype=torch.bool)},
                 target=torch.zeros(n, dtype=torch.long), meta={"subject": [f"s{i}" for i in range(n)]})


def test_autocast_evaluation_and_channels_last_agree_with_fp32() -> None:
    net, _ = _net()
    batch = _batch()
    with torch.no_grad():
        ref = net(batch)["logits"]
        with eval_autocast(torch.device("cpu"), cpu=True):
            low = net(batch)["logits"]
        assert low.dtype == torch.bfloat16
        assert torch.allclose(low.float(), ref, atol=5e-2)
        prepare_network(net, channels_last=True)
        cl = net(to_device(batch, torch.device("cpu"), channels_last=True))["logits"]
    assert to_device(batch, torch.device("cpu"), True).inputs["mri"].is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(cl, ref, atol=1e-5)
    # autocast is off on the CPU unless asked for (evaluation on the CPU stays fp32)
    with eval_autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_device_cohort_cuts_the_batches_a_loader_gives(adni) -> None:
    data = DataModule(adni, SplitConfig(), 0, batch_size=8)
    cohort = DeviceCohort(data, "train", torch.device("cpu"))
    loader = data.loader("train", shuffle=True, epoch=3)
    parts = data.loader("train", shuffle=True, epoch=3, shard=(1, 0)).batch_sampler.parts
    for a, b in zip(cohort.batches(parts), loader):
        assert a.subjects == b.subjects
        assert torch.equal(a.inputs["mri"], b.inputs["mri"]) and torch.equal(a.present["pet"], b.present["pet"])
        assert torch.equal(a.target, b.target)


def test_training_masks_drawn_before_the_copy_equal_the_in_step_masks() -> None:
    from types import SimpleNamespace

    from robustmm.config.schema import ModelConfig, RandomSubsetsScenario, TrainingConfig
    from robustmm.data.base import TaskSpec
    from robustmm.methods.base import MethodContext
    from robustmm.methods.baseline import SupervisedModule
    from robustmm.methods.task import task_adapter
    from robustmm.missing.scenarios import build_scenario

    net, specs = _net()
    net.train()
    task = task_adapter(TaskSpec(kind="binary", num_classes=2))
    ctx = MethodContext("m", specs, TaskSpec(kind="binary", num_classes=2), ModelConfig(), TrainingConfig(), 0)
    module = SupervisedModule(net, task, ctx, build_scenario(RandomSubsetsScenario(kind="random_subsets"), list(specs)),
                              keep_complete=0.3)
    batch = _batch()
    step = SimpleNamespace(epoch=2, prepared=False)
    torch.manual_seed(0)
    a = module.training_step(batch, step)
    prepared = module.prepare_batch(batch, step)
    step.prepared = True
    torch.manual_seed(0)
    b = module.training_step(prepared, step)
    assert torch.equal(a, b)
    changed = [any(not torch.equal(module.prepare_batch(batch, SimpleNamespace(epoch=e)).present[m], batch.present[m])
                   for m in specs) for e in range(6)]
    assert any(changed)  # the masks do narrow availability


def test_host_present_masks_give_the_same_outputs() -> None:
    """On an accelerator the batch carries its host masks (no sync to find the rows to encode)."""
    net, _ = _net()
    batch = _batch()
    with torch.no_grad():
        ref = net(batch)["logits"]
        batch.host_present = {m: p.clone() for m, p in batch.present.items()}
        assert torch.equal(net(batch)["logits"], ref)
        batch.host_present = {m: torch.zeros_like(p) for m, p in batch.present.items()}  # really used
        assert not torch.equal(net(batch)["logits"], ref)


@pytest.mark.slow
def test_compiled_encoders_give_the_same_outputs() -> None:
    net, _ = _net()
    batch = _batch()
    with torch.no_grad():
        ref = net(batch)["logits"]
        prepare_network(net, compile=True)
        got = net(batch)["logits"]
        again = net(_batch(4))["logits"]  # another batch size: dynamic shapes, no failure
    assert torch.allclose(got, ref, atol=1e-5)
    assert again.shape == (4, 2)

"""Evaluation reuses encoder outputs across scenarios: each encoder runs at most once per
(method, test subject) over the default subset / missing-rate grid, with the same scores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from robustmm.config.loader import load_study
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.evaluate.runner import evaluate
from robustmm.methods import create_method
from robustmm.methods.base import MethodContext
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import build_scenarios

REPO = Path(__file__).resolve().parents[1]


def _setup(tiny_study: Path, fills=("zero", "mean")):
    cfg = load_study(tiny_study, ["evaluation.bootstrap=20"])
    # the default study's grid: natural, PET missing at 0..1, every modality subset
    default = load_study(REPO / "studies" / "adni_mci.yaml", [])
    cfg = cfg.model_copy(update={"evaluation": default.evaluation.model_copy(update={"bootstrap": 20})})
    data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, 7, 0)
    scenarios = build_scenarios(cfg.evaluation.scenarios, list(data.modalities))
    methods = {}
    for fill in fills:
        torch.manual_seed(0)
        ctx = MethodContext(f"base_{fill}", data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
        from robustmm.config.schema import MethodConfig

        method = create_method(MethodConfig(name="dropout_baseline", fill=fill), ctx)
        method.task.fit(data)
        if fill == "mean":
            method._prepare(data)
        methods[f"base_{fill}"] = method.eval()
    return cfg, data, scenarios, methods


def test_each_encoder_runs_once_per_subject_and_scores_match(tiny_study: Path) -> None:
    cfg, data, scenarios, methods = _setup(tiny_study)
    assert len(scenarios) >= 10  # natural + 6 rates + 7 subsets
    rows: Counter = Counter()
    hooks = []
    for method_id, method in methods.items():
        for m, enc in method.net.encoders.items():
            hooks.append(enc.register_forward_hook(
                lambda mod, inp, out, key=(method_id, m): rows.update({key: inp[0].shape[0]})))
    task = task_adapter(data.task)
    cached = evaluate(methods, task, data, scenarios, cfg.evaluation, cfg.seed)
    counted = dict(rows)
    rows.clear()
    plain = evaluate(methods, task, data, scenarios, cfg.evaluation.model_copy(update={"encoder_cache": False}),
                     cfg.seed)
    for h in hooks:
        h.remove()

    test_idx = data.indices("test")
    n_test = len(test_idx)
    natural = data.dataset.natural_presence()
    for m in data.modalities:
        have = int(natural[m][test_idx].sum())
        # zero fill: only present rows are encoded, each subject once
        assert counted[("base_zero", m)] == have, (m, counted[("base_zero", m)], have)
        # mean fill: every present subject once, plus the mean input once if the modality was ever absent
        assert have <= counted[("base_mean", m)] <= have + 1
        assert counted[("base_mean", m)] <= n_test + 1
    # without the cache the encoders run once per scenario
    assert rows[("base_zero", "mri")] > 5 * counted[("base_zero", "mri")]

    a = {(r.method, r.scenario, r.metric): r for r in cached.records}
    b = {(r.method, r.scenario, r.metric): r for r in plain.records}
    assert a.keys() == b.keys() and len(a) > 100
    for k in a:
        for field in ("value", "ci_low", "ci_high"):
            x, y = getattr(a[k], field), getattr(b[k], field)
            assert (np.isnan(x) and np.isnan(y)) or abs(x - y) <= 1e-6, (k, field, x, y)
    for method_id in methods:
        pa, pb = cached.reference[method_id].outputs["score"], plain.reference[method_id].outputs["score"]
        assert np.max(np.abs(pa - pb)) <= 1e-6


def test_feature_mask_change_reencodes_only_that_modality() -> None:
    """RMFM on a table: the table encoder reruns for a new mask, the volume encoder never does."""
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import Batch, ModalitySpec
    from robustmm.config.schema import ModelConfig
    from robustmm.missing.scenarios import RMFM
    from robustmm.models.cache import EncoderCache
    from robustmm.models.network import MultimodalNet

    specs = {"mri": ModalitySpec("mri", "volume", (1, 8, 8, 8)), "tab": ModalitySpec("tab", "table", (6,))}
    cfg = ModelConfig.model_validate({"embed_dim": 8, "trunk_hidden": 8,
                                      "volume": {"channels": [2, 4], "strides": [2, 2], "num_res_units": 1}})
    torch.manual_seed(0)
    net = MultimodalNet(specs, TaskSpec(kind="binary", num_classes=2), cfg).eval()
    n = 5
    batch = Batch(inputs={"mri": torch.randn(n, 1, 8, 8, 8), "tab": torch.randn(n, 6)},
                  present={"mri": torch.ones(n, dtype=torch.bool), "tab": torch.ones(n, dtype=torch.bool)},
                  valid={"tab": torch.ones(n, 6, dtype=torch.bool)},
                  feature_mask={"tab": torch.ones(n, 6, dtype=torch.bool)},
                  target=torch.zeros(n, dtype=torch.long), meta={"subject": [f"s{i}" for i in range(n)]})
    cache = EncoderCache()
    net.use_encoder_cache(cache)
    with torch.no_grad():
        for rate in (0.0, 0.3, 0.6):
            b = RMFM(rate_value=rate).apply(batch, specs, seed=1) if rate else batch
            got = net(b)["logits"]
            net.use_encoder_cache(None)
            want = net(b)["logits"]
            net.use_encoder_cache(cache)
            assert torch.allclose(got, want, atol=1e-6)
    assert cache.calls["mri"] == 1 and cache.rows["mri"] == n
    assert cache.calls["tab"] == 3


def test_absent_rows_of_different_lengths_do_not_share_an_encoded_mean_input() -> None:
    """Mean fill: an absent sequence row is the mean input, but its encoder pools over the row's own
    valid positions, so two absent rows of different lengths must not share one cached output."""
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import Batch, ModalitySpec
    from robustmm.config.schema import ModelConfig
    from robustmm.models.cache import EncoderCache
    from robustmm.models.network import MultimodalNet

    specs = {"audio": ModalitySpec("audio", "sequence", (8, 3)), "tab": ModalitySpec("tab", "table", (4,))}
    cfg = ModelConfig.model_validate({"embed_dim": 8, "trunk_hidden": 8})
    torch.manual_seed(0)
    net = MultimodalNet(specs, TaskSpec(kind="binary", num_classes=2), cfg, fill="mean").eval()
    net.fill.set_means({"audio": torch.randn(8, 3), "tab": torch.randn(4)})
    n = 4
    valid = torch.zeros(n, 8, dtype=torch.bool)
    for i, length in enumerate((6, 2, 6, 8)):
        valid[i, :length] = True
    batch = Batch(inputs={"audio": torch.randn(n, 8, 3), "tab": torch.randn(n, 4)},
                  present={"audio": torch.zeros(n, dtype=torch.bool), "tab": torch.ones(n, dtype=torch.bool)},
                  valid={"audio": valid}, target=torch.zeros(n, dtype=torch.long),
                  meta={"subject": [f"s{i}" for i in range(n)]})
    with torch.no_grad():
        want = net(batch)["logits"]
        cache = EncoderCache()
        net.use_encoder_cache(cache)
        got = net(batch)["logits"]
    torch.testing.assert_close(got, want)
    assert cache.rows["audio"] == 3  # lengths 6, 2 and 8; the second length-6 row reuses the first

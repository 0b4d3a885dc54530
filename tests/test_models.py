"""The deployment network: what a missing modality becomes under each fill."""

from __future__ import annotations

import pytest
import torch

from robustmm.config.schema import ModelConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import ModalitySpec, collate
from robustmm.models.network import MultimodalNet, input_means

SPECS = {
    "mri": ModalitySpec("mri", "volume", (1, 8, 8, 8)),
    "clinical": ModalitySpec("clinical", "table", (5,)),
    "audio": ModalitySpec("audio", "sequence", (6, 3)),
    "text": ModalitySpec("text", "tokens", (6,), special_ids=(101, 102), unk_id=100, pad_id=0),
    "wsi": ModalitySpec("wsi", "bag", (7, 4)),
}
CFG = ModelConfig(embed_dim=8, trunk_hidden=8, volume={"channels": [4, 8], "strides": [2, 2]}, table={"hidden": [8]},
                  sequence={"kind": "gru", "hidden": 8})


def batch(n: int = 4, present_mri=None):
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(n):
        samples.append({
            "inputs": {"mri": torch.randn(1, 8, 8, 8, generator=g), "clinical": torch.randn(5, generator=g),
                       "audio": torch.randn(6, 3, generator=g), "text": torch.tensor([101, 7, 8, 9, 102, 0]),
                       "wsi": torch.randn(7, 4, generator=g)},
            "present": {"mri": True if present_mri is None else present_mri[i], "clinical": True, "audio": True,
                        "text": True, "wsi": True},
            "valid": {"clinical": torch.ones(5, dtype=torch.bool), "audio": torch.ones(6, dtype=torch.bool),
                      "text": torch.tensor([1, 1, 1, 1, 1, 0], dtype=torch.bool),
                      "wsi": torch.arange(7) < 5},
            "target": i % 2, "meta": {"subject": f"s{i}"}})
    return collate(samples)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_every_kind_encodes_and_the_head_has_task_outputs(fusion) -> None:
    net = MultimodalNet(SPECS, TaskSpec("binary", 2), CFG.model_copy(update={"fusion": fusion}))
    out = net(batch())
    assert out["logits"].shape == (4, 2) and out["features"].shape == (4, 8)
    assert set(out["modality_features"]) == set(SPECS)


def test_zero_fill_zeroes_the_absent_modality_and_skips_its_encoder() -> None:
    net = MultimodalNet(SPECS, TaskSpec("binary", 2), CFG, fill="zero").eval()
    calls = []
    net.encoders["mri"].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    b = batch(present_mri=[True, False, True, False])
    feats = net.encode(b)
    assert calls == [2]  # only the two subjects that have an MRI went through the encoder
    assert torch.all(feats["mri"][[1, 3]] == 0) and torch.all(feats["mri"][[0, 2]].abs().sum(1) > 0)


def test_absent_modality_input_cannot_leak() -> None:
    net = MultimodalNet(SPECS, TaskSpec("binary", 2), CFG, fill="learned").eval()
    b = batch(present_mri=[False] * 4)
    first = net(b)["logits"]
    b.inputs["mri"] = b.inputs["mri"] * 100 + 5  # garbage in an absent modality
    assert torch.equal(first, net(b)["logits"])
    assert torch.equal(net.encode(b)["mri"], net.fill.embeddings["mri"].detach().expand(4, -1))


def test_mean_fill_feeds_the_training_mean() -> None:
    net = MultimodalNet(SPECS, TaskSpec("binary", 2), CFG, fill="mean").eval()
    train = batch(8)
    means = input_means([train], SPECS)
    assert torch.allclose(means["mri"], train.inputs["mri"].mean(0))
    net.fill.set_means(means)
    b = batch(present_mri=[False, True, True, True])
    with torch.no_grad():
        got = net.encode(b)["mri"][0]
        ref = batch(1)
        ref.inputs["mri"] = means["mri"].unsqueeze(0)
        expected = net.encode(ref)["mri"][0]
    assert torch.allclose(got, expected, atol=1e-6)


def test_dropped_positions_are_filled_and_tokens_become_unk() -> None:
    net = MultimodalNet(SPECS, TaskSpec("binary", 2), CFG, fill="zero")
    b = batch()
    observed = b.feature_mask["text"].clone()
    observed[:, 2] = False
    x = net.fill.fill_input("text", b.inputs["text"], b.present["text"], observed)
    assert torch.all(x[:, 2] == 100) and torch.all(x[:, 5] == 0)  # [UNK]; padding stays padding
    obs_audio = b.feature_mask["audio"].clone()
    obs_audio[:, 1] = False
    a = net.fill.fill_input("audio", b.inputs["audio"], b.present["audio"], obs_audio)
    assert torch.all(a[:, 1] == 0) and torch.equal(a[:, 0], b.inputs["audio"][:, 0])

"""RMFM (random modality feature missing) on hand-built text/audio/vision sequences, as in
specs/rmfm.md: per-position drops, [CLS]/[SEP] kept, padding untouched, rates 0..1, per-modality
rates, training-mode per-position rates, determinism, whole-modality random missing, AUILC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustmm.config.schema import RandomModalityScenario, RMFMScenario
from robustmm.data.batch import Batch, ModalitySpec, collate
from robustmm.metrics.robustness import auilc
from robustmm.missing.scenarios import RMFM, RandomModality, TemporalBlock, build_scenarios
from robustmm.models.network import ModalityFill

CLS, SEP, UNK, PAD = 101, 102, 100, 0
L, T_V = 10, 14  # text/audio length (aligned), vision length (own lengths)

SPECS = {
    "text": ModalitySpec("text", "tokens", (L,), special_ids=(CLS, SEP), unk_id=UNK, pad_id=PAD),
    "audio": ModalitySpec("audio", "sequence", (L, 3)),
    "vision": ModalitySpec("vision", "sequence", (T_V, 2)),
}
FEATURE_SPECS = {**SPECS, "text": ModalitySpec("text", "sequence", (L, 4), special_ids=(CLS, SEP))}


def make_batch(n: int, seed: int = 0, text_features: bool = False) -> Batch:
    """n utterances: [CLS] words [SEP] then [PAD]; audio aligned with the text; vision with its
    own length. Every real value is non-zero, padding is zero."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        length = int(rng.integers(3, L + 1))
        v_len = int(rng.integers(1, T_V + 1))
        ids = torch.full((L,), PAD, dtype=torch.long)
        ids[:length] = torch.from_numpy(rng.integers(1000, 3000, length))
        ids[0], ids[length - 1] = CLS, SEP
        text_valid = torch.arange(L) < length
        text = ids
        if text_features:
            text = torch.from_numpy(rng.uniform(1, 2, (L, 4)).astype(np.float32)) * text_valid.unsqueeze(-1)
        samples.append({
            "inputs": {"text": text,
                       "audio": torch.from_numpy(rng.uniform(1, 2, (L, 3)).astype(np.float32)) * text_valid.unsqueeze(-1),
                       "vision": torch.from_numpy(rng.uniform(1, 2, (T_V, 2)).astype(np.float32))
                       * (torch.arange(T_V) < v_len).unsqueeze(-1)},
            "present": {"text": True, "audio": True, "vision": True},
            "valid": {"text": text_valid, "audio": text_valid.clone(), "vision": torch.arange(T_V) < v_len},
            "target": 0,
            "meta": {"subject": f"u{i:04d}", "ids": ids},
        })
    return collate(samples)


def special_positions(batch: Batch) -> torch.Tensor:
    ids = torch.stack(batch.meta["ids"])
    return (ids == CLS) | (ids == SEP)


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_batch(400)


def test_rate_zero_keeps_everything(batch: Batch) -> None:
    out = RMFM(rate_value=0.0).apply(batch, SPECS, seed=1)
    for m in SPECS:
        assert torch.equal(out.feature_mask[m], batch.valid[m])
        assert torch.equal(out.present[m], batch.present[m])
    assert out.inputs is batch.inputs  # masks only: the data are never modified


def test_rate_one_drops_every_real_position_except_cls_sep(batch: Batch) -> None:
    out = RMFM(rate_value=1.0).apply(batch, SPECS, seed=1)
    special = special_positions(batch)
    assert torch.equal(out.feature_mask["text"], special)  # only [CLS] and [SEP] stay observed
    assert not out.feature_mask["audio"].any() and not out.feature_mask["vision"].any()
    assert all(bool(p.all()) for p in out.present.values())  # per-position missing, not whole-modality

    # fill: dropped tokens become [UNK]; [CLS]/[SEP] and [PAD] keep their ids
    filled = ModalityFill(SPECS, "zero", 8).fill_input("text", batch.inputs["text"], out.present["text"],
                                                        out.feature_mask["text"])
    ids = batch.inputs["text"]
    real_words = batch.valid["text"] & ~special
    assert (filled[real_words] == UNK).all()
    assert torch.equal(filled[special], ids[special])
    assert (filled[~batch.valid["text"]] == PAD).all()


def test_text_features_keep_first_and_last_real_position() -> None:
    batch = make_batch(50, text_features=True)
    out = RMFM(rate_value=1.0).apply(batch, FEATURE_SPECS, seed=0)
    assert torch.equal(out.feature_mask["text"], special_positions(batch))


@pytest.mark.parametrize("rate", [0.3, 1.0])
def test_padding_is_never_touched(batch: Batch, rate: float) -> None:
    for training in (False, True):
        out = RMFM(rate_value=rate, training=training).apply(batch, SPECS, seed=2, epoch=0 if training else None)
        for m in SPECS:
            pad = ~batch.valid[m]
            assert not out.feature_mask[m][pad].any()          # padding is not "observed" data ...
            assert torch.equal(out.valid[m], batch.valid[m])    # ... and stays padding
            # a position counts as dropped only where it was real
            dropped = batch.valid[m] & ~out.feature_mask[m]
            assert not dropped[pad].any()


def test_empirical_rate_at_0_3(batch: Batch) -> None:
    out = RMFM(rate_value=0.3).apply(batch, SPECS, seed=3)
    special = special_positions(batch)
    for m in SPECS:
        droppable = batch.valid[m] & ~(special if m == "text" else torch.zeros_like(batch.valid[m]))
        n = int(droppable.sum())
        rate = float((droppable & ~out.feature_mask[m]).sum()) / n
        # binomial sd sqrt(0.21 / n) <= 0.005 for n >= 2000: 0.03 is > 6 sd
        assert n > 1500 and abs(rate - 0.3) < 0.03, (m, n, rate)


def test_same_seed_same_mask_and_independent_of_batch_composition(batch: Batch) -> None:
    a = RMFM(rate_value=0.5).apply(batch, SPECS, seed=7)
    b = RMFM(rate_value=0.5).apply(batch, SPECS, seed=7)
    c = RMFM(rate_value=0.5).apply(batch, SPECS, seed=8)
    for m in SPECS:
        assert torch.equal(a.feature_mask[m], b.feature_mask[m])
    assert any(not torch.equal(a.feature_mask[m], c.feature_mask[m]) for m in SPECS)
    # a sample's holes depend on (seed, its id), not on which batch it came in
    part = batch.select(torch.arange(10, 20))
    d = RMFM(rate_value=0.5).apply(part, SPECS, seed=7)
    for m in SPECS:
        assert torch.equal(d.feature_mask[m], a.feature_mask[m][10:20])


def test_rate_grid_masks_are_consistent_in_expectation(batch: Batch) -> None:
    grid = build_scenarios([RMFMScenario(kind="rmfm", rates=[round(0.1 * i, 1) for i in range(11)])], list(SPECS))
    assert [s.name for s in grid] == [f"rmfm@{r:g}" for r in np.round(np.arange(11) * 0.1, 1)]
    assert [s.rate for s in grid] == pytest.approx([0.1 * i for i in range(11)])
    part = batch.select(torch.arange(150))
    kept = [float(s.apply(part, SPECS, seed=0).feature_mask["audio"].sum()) / float(part.valid["audio"].sum())
            for s in grid]
    assert kept[0] == 1.0 and kept[-1] == 0.0
    assert all(a > b for a, b in zip(kept, kept[1:]))  # more missing at every step of the grid


def test_per_modality_rates(batch: Batch) -> None:
    only_audio = RMFM(rate_value=0.0, modality_rates=(("audio", 1.0),)).apply(batch, SPECS, seed=0)
    assert torch.equal(only_audio.feature_mask["text"], batch.valid["text"])
    assert torch.equal(only_audio.feature_mask["vision"], batch.valid["vision"])
    assert not only_audio.feature_mask["audio"].any()
    # (p_t, p_a, p_v) = (0.2, 0.5, 0.8)
    mixed = RMFM(modality_rates=(("text", 0.2), ("audio", 0.5), ("vision", 0.8))).apply(batch, SPECS, seed=0)
    special = special_positions(batch)
    for m, p in (("text", 0.2), ("audio", 0.5), ("vision", 0.8)):
        droppable = batch.valid[m] & ~(special if m == "text" else torch.zeros_like(special[:, :1]))
        rate = float((droppable & ~mixed.feature_mask[m]).sum()) / float(droppable.sum())
        assert abs(rate - p) < 0.04, (m, rate)
    # restricting the modalities leaves the others alone
    text_only = RMFM(rate_value=1.0, modalities=("text",)).apply(batch, SPECS, seed=0)
    assert torch.equal(text_only.feature_mask["audio"], batch.valid["audio"])


def test_training_mode_draws_a_rate_per_position_and_fresh_masks_per_epoch(batch: Batch) -> None:
    scenario = RMFM(training=True)
    e0 = scenario.apply(batch, SPECS, seed=0, epoch=0)
    e0_again = scenario.apply(batch, SPECS, seed=0, epoch=0)
    e1 = scenario.apply(batch, SPECS, seed=0, epoch=1)
    assert torch.equal(e0.feature_mask["audio"], e0_again.feature_mask["audio"])
    assert not torch.equal(e0.feature_mask["audio"], e1.feature_mask["audio"])
    # u <= r with u, r ~ U(0, 1) independent: P(drop) = 1/2
    rate = float((batch.valid["audio"] & ~e0.feature_mask["audio"]).sum()) / float(batch.valid["audio"].sum())
    assert abs(rate - 0.5) < 0.03
    # per-sample drop fractions spread widely (not one shared rate per batch)
    per_sample = (batch.valid["vision"] & ~e0.feature_mask["vision"]).sum(1).float() / batch.valid["vision"].sum(1)
    assert per_sample.std() > 0.15
    assert torch.equal(e0.feature_mask["text"] & special_positions(batch), special_positions(batch))


def test_shared_mask_drops_the_same_time_steps_in_aligned_modalities(batch: Batch) -> None:
    out = RMFM(rate_value=0.5, modalities=("audio", "text"), shared_mask=True).apply(batch, SPECS, seed=4)
    words = batch.valid["text"] & ~special_positions(batch)
    assert torch.equal(out.feature_mask["audio"][words], out.feature_mask["text"][words])


def test_temporal_block_is_one_contiguous_block_shared_by_the_modalities(batch: Batch) -> None:
    out = TemporalBlock(rate_value=0.5, modalities=("text", "audio")).apply(batch, SPECS, seed=0)
    for i in range(batch.size):
        length = int(batch.valid["text"][i].sum())
        holes = (~out.feature_mask["text"][i][:length]).nonzero().flatten()
        assert holes.numel() == round((length - 2) * 0.5)
        if holes.numel():
            assert holes[0] >= 1 and holes[-1] <= length - 2
            assert torch.equal(holes, torch.arange(int(holes[0]), int(holes[0]) + holes.numel()))
        assert torch.equal(out.feature_mask["audio"][i], out.feature_mask["text"][i])


def test_random_modality_drops_whole_modalities_but_never_all(batch: Batch) -> None:
    half = build_scenarios([RandomModalityScenario(kind="random_modality", rates=[0.5])], list(SPECS))[0]
    out = half.apply(batch, SPECS, seed=0)
    present = torch.stack([out.present[m] for m in SPECS], 1)
    assert present.any(1).all()
    assert abs(1 - present.float().mean().item() - 0.5) < 0.08  # slightly under 0.5: one is always kept
    # a dropped modality has no observed position at all
    for m in SPECS:
        assert not out.feature_mask[m][~out.present[m]].any()
    everything = RandomModality(rate_value=1.0).apply(batch, SPECS, seed=0)
    assert (torch.stack([everything.present[m] for m in SPECS], 1).sum(1) == 1).all()


def test_auilc_is_the_trapezoid_over_the_rmfm_grid() -> None:
    rates = [round(0.1 * i, 1) for i in range(11)]
    values = [0.9, 0.88, 0.85, 0.8, 0.76, 0.7, 0.66, 0.6, 0.57, 0.52, 0.5]
    by_hand = sum((values[i] + values[i + 1]) * 0.1 / 2 for i in range(10))
    assert auilc(values, rates) == pytest.approx(by_hand)
    assert auilc([0.7] * 11, rates) == pytest.approx(0.7)


def test_rmfm_on_an_mmsa_file_keeps_special_tokens(tmp_path: Path) -> None:
    from robustmm.data.mmsa import MMSADataset
    from robustmm.data.synth.mmsa import write_synthetic_mmsa

    path = write_synthetic_mmsa(tmp_path / "aligned_50.pkl", n_train=12, n_valid=5, n_test=5, seq_len=10,
                                dims=(6, 3, 4))
    for mode in ("ids", "features"):
        ds = MMSADataset(path, text_mode=mode)
        batch = collate([ds[i] for i in range(len(ds))])
        out = RMFM(rate_value=1.0).apply(batch, ds.modalities, seed=0)
        ids = torch.from_numpy(np.concatenate([ds.token_ids(s) for s in ("train", "val", "test")]))
        assert torch.equal(out.feature_mask["text"], (ids == CLS) | (ids == SEP)), mode


def test_feature_scenarios_are_refused_on_data_without_positions() -> None:
    from robustmm.config.schema import TemporalBlockScenario

    volumes = {m: ModalitySpec(m, "volume", (1, 8, 8, 8)) for m in ("flair", "t1")}
    rmfm = RMFMScenario(kind="rmfm", rates=[0.5])
    block = TemporalBlockScenario(kind="temporal_block", rates=[0.5])
    with pytest.raises(ValueError, match="no modality of these data has positions to drop"):
        build_scenarios([rmfm], volumes)  # on volumes it would change nothing
    with pytest.raises(ValueError, match="temporal_block drops time steps .* these data have none"):
        build_scenarios([block], volumes)
    with pytest.raises(ValueError, match=r"\['clinical'\] are not sequences or tokens"):
        build_scenarios([TemporalBlockScenario(kind="temporal_block", rates=[0.5], modalities=["clinical"])],
                        {**SPECS, "clinical": ModalitySpec("clinical", "table", (4,))})
    # names only (before the data are read): no kind check; with table columns or sequences: fine
    assert len(build_scenarios([rmfm, block], list(volumes))) == 2
    assert len(build_scenarios([rmfm], {**volumes, "clinical": ModalitySpec("clinical", "table", (4,))})) == 1
    assert len(build_scenarios([rmfm, block], SPECS)) == 2

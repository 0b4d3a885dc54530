"""The missing engine on hand-built batches with known answers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmm.config.schema import (
    AllSubsetsScenario,
    ModalityRateScenario,
    RandomModalityScenario,
    RMFMScenario,
    SubsetScenario,
    TemporalBlockScenario,
)
from robustmm.data.batch import ModalitySpec, collate
from robustmm.missing import RMFM, ModalityRate, Natural, RandomModality, RandomSubsets, Subset, TemporalBlock
from robustmm.missing.scenarios import build_scenario, build_scenarios

CLS, SEP, UNK, PAD = 101, 102, 100, 0
T = 12


def make_batch(n: int = 2000, natural_pet: float = 0.7, seed: int = 0):
    """n subjects: volume 'mri' (always), volume 'pet' (natural rate), table 'clinical' (6 columns,
    column 5 naturally missing for odd subjects), tokens 'text' (variable real length + padding)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        length = int(rng.integers(4, T + 1))
        ids = torch.full((T,), PAD, dtype=torch.long)
        ids[:length] = torch.from_numpy(rng.integers(1000, 2000, length))
        ids[0], ids[length - 1] = CLS, SEP
        valid_cols = torch.ones(6, dtype=torch.bool)
        valid_cols[5] = i % 2 == 0
        samples.append({
            "inputs": {"mri": torch.zeros(1, 2, 2, 2), "pet": torch.zeros(1, 2, 2, 2), "clinical": torch.zeros(6),
                       "text": ids, "audio": torch.zeros(T, 3)},
            "present": {"mri": True, "pet": bool(rng.random() < natural_pet), "clinical": True, "text": True,
                        "audio": True},
            "valid": {"clinical": valid_cols, "text": torch.arange(T) < length, "audio": torch.arange(T) < length},
            "target": 0,
            "meta": {"subject": f"S{i:05d}"},
        })
    return collate(samples)


SPECS = {
    "mri": ModalitySpec("mri", "volume", (1, 2, 2, 2)),
    "pet": ModalitySpec("pet", "volume", (1, 2, 2, 2)),
    "clinical": ModalitySpec("clinical", "table", (6,)),
    "text": ModalitySpec("text", "tokens", (T,), special_ids=(CLS, SEP), unk_id=UNK, pad_id=PAD),
    "audio": ModalitySpec("audio", "sequence", (T, 3)),
}


@pytest.fixture(scope="module")
def batch():
    return make_batch()


def never_empty(b) -> bool:
    return bool(torch.stack(list(b.present.values())).any(0).all())


def test_natural_changes_nothing(batch) -> None:
    out = Natural().apply(batch, SPECS, seed=1)
    for m in batch.present:
        assert torch.equal(out.present[m], batch.present[m])
    for m in batch.feature_mask:
        assert torch.equal(out.feature_mask[m], batch.feature_mask[m])


def test_subset_keeps_exactly_the_subset_and_flags_unavailable(batch) -> None:
    s = Subset(name="mri+pet", modalities=("mri", "pet"))
    out = s.apply(batch, SPECS, seed=0)
    assert not out.present["clinical"].any() and not out.present["text"].any()
    assert torch.equal(out.present["pet"], batch.present["pet"])  # natural missingness kept
    assert torch.equal(s.evaluable(batch), batch.present["pet"])  # PET-less subjects are not evaluable


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.6, 1.0])
def test_modality_rate_hits_its_rate_and_respects_natural_missingness(batch, rate) -> None:
    out = ModalityRate(modality="pet", rate_value=rate).apply(batch, SPECS, seed=7)
    had = batch.present["pet"]
    dropped = (had & ~out.present["pet"]).sum().item() / had.sum().item()
    assert abs(dropped - rate) < 0.04
    assert not (out.present["pet"] & ~had).any()  # never un-missed
    assert torch.equal(out.present["mri"], batch.present["mri"])


def test_modality_rate_is_nested_and_deterministic(batch) -> None:
    lo = ModalityRate(modality="pet", rate_value=0.4).apply(batch, SPECS, seed=7).present["pet"]
    hi = ModalityRate(modality="pet", rate_value=0.6).apply(batch, SPECS, seed=7).present["pet"]
    assert not (hi & ~lo).any()  # dropped at 0.4 => dropped at 0.6
    again = ModalityRate(modality="pet", rate_value=0.4).apply(batch, SPECS, seed=7).present["pet"]
    other = ModalityRate(modality="pet", rate_value=0.4).apply(batch, SPECS, seed=8).present["pet"]
    assert torch.equal(lo, again) and not torch.equal(lo, other)


def test_masks_depend_on_subject_not_batch_position(batch) -> None:
    s = RandomSubsets()
    full = s.apply(batch, SPECS, seed=3, epoch=2)
    idx = torch.arange(batch.size - 1, -1, -1)[:50]
    part = s.apply(batch.select(idx), SPECS, seed=3, epoch=2)
    for m in batch.present:
        assert torch.equal(part.present[m], full.present[m][idx])


def test_modality_rate_keeps_an_only_modality() -> None:
    b = make_batch(50)
    b = b.with_masks({m: (v if m == "pet" else torch.zeros_like(v)) for m, v in b.present.items()})
    out = ModalityRate(modality="pet", rate_value=1.0).apply(b, SPECS, seed=0)
    assert torch.equal(out.present["pet"], b.present["pet"])


def test_random_subsets_uniform_never_empty_and_fresh_each_epoch() -> None:
    b = make_batch(3500, natural_pet=1.0)
    b = b.with_masks({m: (v if m in ("mri", "pet", "clinical") else torch.zeros_like(v)) for m, v in b.present.items()})
    out = RandomSubsets().apply(b, SPECS, seed=0, epoch=0)
    assert never_empty(out)
    combos = [tuple(bool(out.present[m][i]) for m in ("mri", "pet", "clinical")) for i in range(b.size)]
    counts = {c: combos.count(c) for c in itertools.product([False, True], repeat=3)}
    assert counts[(False, False, False)] == 0
    for c, k in counts.items():
        if any(c):
            assert abs(k / b.size - 1 / 7) < 0.025, (c, k)
    later = RandomSubsets().apply(b, SPECS, seed=0, epoch=1)
    assert not torch.equal(later.present["pet"], out.present["pet"])


def test_random_subsets_respects_natural_missingness(batch) -> None:
    out = RandomSubsets().apply(batch, SPECS, seed=0, epoch=0)
    assert not (out.present["pet"] & ~batch.present["pet"]).any()
    assert never_empty(out)


def test_random_modality_rate_and_never_empty(batch) -> None:
    out = RandomModality(rate_value=0.5).apply(batch, SPECS, seed=0)
    assert never_empty(out)
    kept = out.present["mri"].float().mean().item()
    assert 0.45 < kept < 0.6  # 0.5 plus the rescue of all-dropped samples
    everything = RandomModality(rate_value=1.0).apply(batch, SPECS, seed=0)
    assert never_empty(everything)
    assert torch.stack(list(everything.present.values())).sum(0).eq(1).all()


def test_rmfm_rate_zero_keeps_all_and_rate_one_keeps_only_specials(batch) -> None:
    keep = RMFM(rate_value=0.0).apply(batch, SPECS, seed=0)
    for m in ("text", "audio", "clinical"):
        assert torch.equal(keep.feature_mask[m], batch.feature_mask[m])
    drop = RMFM(rate_value=1.0).apply(batch, SPECS, seed=0)
    ids = batch.inputs["text"]
    special = (ids == CLS) | (ids == SEP)
    assert torch.equal(drop.feature_mask["text"], special & batch.valid["text"])
    assert not drop.feature_mask["audio"].any() and not drop.feature_mask["clinical"].any()
    assert torch.equal(drop.present["text"], batch.present["text"])  # RMFM drops positions, not modalities


def test_rmfm_rate_per_modality_and_padding_untouched(batch) -> None:
    out = RMFM(rate_value=0.3, modality_rates=(("audio", 0.6),)).apply(batch, SPECS, seed=5)
    ids = batch.inputs["text"]
    droppable = batch.valid["text"] & (ids != CLS) & (ids != SEP)
    text_rate = (droppable & ~out.feature_mask["text"]).sum() / droppable.sum()
    audio_rate = (batch.valid["audio"] & ~out.feature_mask["audio"]).sum() / batch.valid["audio"].sum()
    assert abs(text_rate.item() - 0.3) < 0.02 and abs(audio_rate.item() - 0.6) < 0.02
    assert not (out.feature_mask["text"] & ~batch.valid["text"]).any()  # padding never becomes observed
    col5 = out.feature_mask["clinical"][:, 5]
    assert not col5[1::2].any()  # naturally missing columns stay missing
    same = RMFM(rate_value=0.3, modality_rates=(("audio", 0.6),)).apply(batch, SPECS, seed=5)
    assert torch.equal(same.feature_mask["text"], out.feature_mask["text"])


def test_rmfm_training_mode_draws_a_rate_per_position(batch) -> None:
    out = RMFM(training=True).apply(batch, SPECS, seed=0, epoch=0)
    rate = (batch.valid["audio"] & ~out.feature_mask["audio"]).sum() / batch.valid["audio"].sum()
    assert abs(rate.item() - 0.5) < 0.02  # E[1{u <= r}] with u, r ~ U(0, 1)
    other = RMFM(training=True).apply(batch, SPECS, seed=0, epoch=1)
    assert not torch.equal(other.feature_mask["audio"], out.feature_mask["audio"])


def test_rmfm_rejects_modalities_without_positions(batch) -> None:
    with pytest.raises(ValueError, match="no positions"):
        RMFM(rate_value=0.2, modalities=("mri",)).apply(batch, SPECS, seed=0)


def test_temporal_block_is_one_shared_contiguous_block(batch) -> None:
    p = 0.5
    out = TemporalBlock(rate_value=p, modalities=("text", "audio")).apply(batch, SPECS, seed=0)
    for i in range(200):
        length = int(batch.valid["text"][i].sum())
        hole = (batch.valid["text"][i] & ~out.feature_mask["text"][i]).nonzero().flatten().tolist()
        assert len(hole) == round((length - 2) * p)
        if hole:
            assert hole == list(range(hole[0], hole[0] + len(hole)))
            assert hole[0] >= 1 and hole[-1] <= length - 2
        assert torch.equal(out.feature_mask["text"][i], out.feature_mask["audio"][i])


def test_build_scenarios_expands_grids_and_validates_names() -> None:
    mods = ["mri", "pet", "clinical"]
    built = build_scenarios([ModalityRateScenario(kind="modality_rate", modality="pet", rates=[0, 0.5, 1]),
                             AllSubsetsScenario(kind="all_subsets"),
                             SubsetScenario(kind="subset", modalities=["clinical", "mri"], name="no_pet")], mods)
    names = [s.name for s in built]
    assert names[:3] == ["pet_missing@0", "pet_missing@0.5", "pet_missing@1"]
    assert len([s for s in built if s.group == "subsets"]) == 7 + 1  # all 7 subsets and the named one
    assert built[-1].modalities == ("mri", "clinical")
    with pytest.raises(ValueError, match="do not have"):
        build_scenarios([ModalityRateScenario(kind="modality_rate", modality="ct", rate=0.2)], mods)
    with pytest.raises(ValueError, match="single scenario"):
        build_scenario(RandomModalityScenario(kind="random_modality", rates=[0.1, 0.2]), mods)
    assert isinstance(build_scenario(RMFMScenario(kind="rmfm", training=True), mods), RMFM)
    assert isinstance(build_scenario(TemporalBlockScenario(kind="temporal_block", rate=0.2), mods), TemporalBlock)


def test_build_scenarios_takes_the_study_file_form_of_a_scenario() -> None:
    """The public API takes a scenario as a study file writes it, validated as the study is."""
    built = build_scenarios([{"kind": "natural"}, {"kind": "modality_rate", "modality": "pet", "rates": [0, 0.5, 1]},
                             AllSubsetsScenario(kind="all_subsets")], ["mri", "pet"])
    assert [s.name for s in built] == ["natural", "pet_missing@0", "pet_missing@0.5", "pet_missing@1", "mri", "pet",
                                       "mri+pet"]
    assert [s.rate for s in built[1:4]] == [0, 0.5, 1]
    with pytest.raises(ValueError, match=r"scenario 0 .*: rates.1: Input should be less than or equal to 1"):
        build_scenarios([{"kind": "modality_rate", "modality": "pet", "rates": [0, 1.5]}], ["mri", "pet"])
    with pytest.raises(ValueError, match=r"scenario 1 .*: nme: Extra inputs are not permitted"):
        build_scenarios([{"kind": "natural"}, {"kind": "natural", "nme": "x"}], ["mri", "pet"])


def test_a_temporal_block_naming_an_unknown_modality_is_refused_when_the_study_is_read() -> None:
    # it was accepted and failed with a ValueError traceback at evaluation, after every method had trained
    from robustmm.config.loader import load_study
    from robustmm.errors import ConfigError
    from robustmm.runguard import check_before_data

    with pytest.raises(ValueError, match=r"modalities \['txt'\] that the data do not have .*did you mean 'text'"):
        build_scenarios([TemporalBlockScenario(kind="temporal_block", rate=0.5, modalities=["text", "txt"])],
                        ["text", "audio", "vision"])
    study = Path(__file__).resolve().parents[1] / "studies" / "mosi_rmfm.yaml"
    cfg = load_study(study, ["evaluation.scenarios.1={kind: temporal_block, rates: [0.5], modalities: [txt]}"])
    with pytest.raises(ConfigError, match=r"mosi_rmfm.yaml: evaluation.scenarios.1 \(from the command line"):
        check_before_data(cfg)


def test_a_method_dropout_naming_an_unknown_modality_is_refused_before_any_folder(tmp_path) -> None:
    from robustmm.config.loader import load_study
    from robustmm.errors import ConfigError
    from robustmm.runguard import check_before_data

    path = tmp_path / "study.yaml"
    study = f"""
name: dropcheck
data: {{kind: adni, root: {tmp_path}}}
methods:
  - name: complete_only
  - name: dropout_baseline
    dropout: {{kind: subset, modalities: [mri, dwi]}}
"""
    path.write_text(study)
    with pytest.raises(ConfigError, match=r"methods\.1\.dropout \(method 'dropout_baseline'\): scenarios name "
                                          r"modalities \['dwi'\]"):
        check_before_data(load_study(path))
    path.write_text(study.replace("mri, dwi", "mri, pet"))
    for name in ("ADNIMERGE.csv", "manifest.csv"):  # the files the ADNI loader reads first
        (tmp_path / name).touch()
    check_before_data(load_study(path))


def test_method_scenarios_checked_at_read_are_single_scenarios_and_bad_options_are_config_errors() -> None:
    from types import SimpleNamespace

    from robustmm.config.schema import MethodConfig
    from robustmm.errors import ConfigError
    from robustmm.runguard import check_method_scenarios

    grid = MethodConfig(name="dropout_baseline", dropout={"kind": "modality_rate", "modality": "pet", "rates": [0.2, 0.5]})
    with pytest.raises(ConfigError, match=r"methods\.0\.dropout .*must be a single scenario"):
        check_method_scenarios(SimpleNamespace(methods=[grid]), ["mri", "pet", "clinical"])
    bogus = MethodConfig(name="dropout_baseline", fill="bogus")  # reached by a sweep before the option check
    with pytest.raises(ConfigError, match=r"methods\.0\.fill"):
        check_method_scenarios(SimpleNamespace(methods=[bogus]), ["mri", "pet", "clinical"])

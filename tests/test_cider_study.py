"""The MOSI RMFM study end to end on a tiny synthetic file: dropout baseline and CIDer,
RMFM curves at 11 rates with AUILC, whole-modality random missing, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustmm.config import load_study
from robustmm.study import run_study

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.synthetic={n_train: 40, n_valid: 20, n_test: 24, seq_len: 8, dims: [16, 5, 6], seed: 0, "
    "bias_strength_train: 0.8, bias_strength_test: 0.0}",
    "model.embed_dim=8", "model.trunk_hidden=8", "model.sequence.hidden=8",
    "training.epochs=1", "training.batch_size=20", "training.device=cpu",
    "evaluation.bootstrap=10",
    "methods.1.hidden=8", "methods.1.layers=1", "methods.1.heads=2", "methods.1.tau_grid=[0.0, 0.5, 1.0]",
]


@pytest.mark.parametrize("study", ["mosi_rmfm", "mosi_rmfm_ood"])
def test_studies_load_with_every_profile(study: str) -> None:
    for profile in (None, "seven", "real"):
        cfg = load_study(REPO / "studies" / f"{study}.yaml", profile=profile)
        assert cfg.data.kind == "mmsa" and [m.name for m in cfg.methods] == ["dropout_baseline", "cider"]
        assert (cfg.data.synthetic is None) == (profile == "real")


@pytest.mark.slow
def test_ood_study_runs_end_to_end(tmp_path: Path) -> None:
    cfg = load_study(REPO / "studies" / "mosi_rmfm_ood.yaml",
                     [f"data.root={tmp_path / 'mosi'}", f"output_dir={tmp_path / 'runs'}", *TINY])
    result = run_study(cfg, progress=False)
    doc = json.loads((result.run_dir / "metrics.json").read_text())
    records = doc["records"]
    assert doc["synthetic"] is True and doc["primary_metric"] == "Non0_acc_2"
    rmfm_rates = sorted({r["rate"] for r in records if r["group"] == "rmfm" and r["rate"] is not None})
    assert rmfm_rates == pytest.approx([0.1 * i for i in range(11)])
    for method in ("dropout_baseline", "cider"):
        for metric in ("Non0_acc_2", "Non0_F1"):
            auilc = [r for r in records if r["method"] == method and r["scenario"] == "rmfm:AUILC"
                     and r["metric"] == metric]
            assert len(auilc) == 1 and 0.0 <= auilc[0]["value"] <= 1.0
        assert any(r["method"] == method and r["scenario"] == "random_modality:AUILC" for r in records)
    cider = doc["methods"]["cider"]
    assert cider["tau"] in (0.0, 0.5, 1.0) and cider["tau_selected_on"].startswith("validation")
    assert (result.run_dir / "plots" / "cider_tau.png").is_file()
    assert "counterfactual strength" in (result.run_dir / "report.html").read_text()


def test_a_too_small_vocab_size_stops_the_study_before_any_method_trains(tmp_path: Path) -> None:
    from robustmm.data.mmsa import MMSADataset
    from robustmm.errors import ConfigError

    cfg = load_study(REPO / "studies" / "mosi_rmfm.yaml",
                     [f"data.root={tmp_path / 'mosi'}", f"output_dir={tmp_path / 'runs'}", *TINY,
                      "methods.1.vocab_size=50"])
    with pytest.raises(ConfigError) as info:
        run_study(cfg, progress=False)
    ds = MMSADataset(tmp_path / "mosi" / "aligned_50.pkl")
    largest = max(int(ds.token_ids(split).max()) for split in ("train", "val", "test"))
    assert f"option vocab_size is 50, but the largest token id of the data is {largest};" in str(info.value)
    assert not list((tmp_path / "runs").rglob("checkpoints/*/*"))  # the baseline (trained first) never started


def test_a_regression_target_stops_the_study_before_any_method_trains(tmp_path: Path) -> None:
    """CIDer is a classifier: the study says so before the baseline (trained first) spends its time."""
    from robustmm.errors import ConfigError

    cfg = load_study(REPO / "studies" / "mosi_rmfm.yaml",
                     [f"data.root={tmp_path / 'mosi'}", f"output_dir={tmp_path / 'runs'}", *TINY,
                      "data.options.target=regression"])
    with pytest.raises(ConfigError, match=r"method 'cider' \(cider\) is a classifier.*the task is 'regression'"):
        run_study(cfg, progress=False)
    assert not list((tmp_path / "runs").rglob("checkpoints/*/*"))

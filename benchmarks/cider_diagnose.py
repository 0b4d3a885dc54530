"""Diagnostics for CIDer's MSSD positive control (benchmarks/cider_mosi.py control (a)):
training curves, restored epochs and optimizer steps of CIDer and the RMFM-trained dropout
baseline, and one-term-at-a-time ablations of MSSD (L_rep, L_attn, L_rec, all), scored on the
validation split (RMFM AUILC, Non0_acc_2) and on the test split. SYNTHETIC data. Not a results
file of its own: prints one JSON line per seed (and writes it with --out).

    python benchmarks/cider_diagnose.py --seed 0 --n-train 300 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from robustmm.config.schema import (EarlyStoppingConfig, EvaluationConfig, MethodConfig, ModelConfig, RMFMScenario,
                                    SequenceEncoderConfig, SplitConfig, TrainingConfig)
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset
from robustmm.data.synth.mmsa import write_synthetic_mmsa
from robustmm.engine.trainer import Trainer, stable_seed
from robustmm.evaluate.runner import evaluate
from robustmm.methods.base import MethodContext, create_method
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import build_scenarios

try:  # run as a script from the repository root or from benchmarks/
    from benchmarks.cider_mosi import rmfm_selection
    from benchmarks.seed_runs import append_text_atomic
except ImportError:  # pragma: no cover
    from cider_mosi import rmfm_selection
    from seed_runs import append_text_atomic

RATES = [round(0.1 * i, 1) for i in range(11)]


class Recorder:
    def __init__(self):
        self.history = []

    def on_validation_end(self, stage, epoch, metrics):
        self.history.append({"epoch": epoch, "val_loss": round(metrics["loss"], 4),
                             "train_loss": round(metrics["train_loss"], 4),
                             "val_acc": round(metrics.get("Non0_acc_2", float("nan")), 4)})


def fit(run_id, mcfg, dataset, data, args, seed, work):
    model = ModelConfig(embed_dim=args.hidden, trunk_hidden=args.hidden, dropout=0.1,
                        sequence=SequenceEncoderConfig(kind="gru", hidden=args.hidden))
    training = TrainingConfig(epochs=args.epochs, batch_size=32, lr=args.lr, weight_decay=0.0, device="cpu",
                              threads=1, early_stopping=EarlyStoppingConfig(monitor=args.monitor,
                                                                            patience=args.patience,
                                                                            min_epochs=args.min_epochs))
    torch.manual_seed(stable_seed(seed, run_id.split("@")[0]))
    ctx = MethodContext(run_id.split("@")[0], dataset.modalities, dataset.task, model, training, seed)
    method = create_method(mcfg, ctx)
    rec = Recorder()
    trainer = Trainer(training, work / run_id, seed, progress=False, callbacks=[rec],
                      selection_scenarios=rmfm_selection(args, data))
    start = time.process_time()
    method.fit(data, trainer)
    sel = trainer.selections[-1]
    info = {"best_epoch": sel["restored_epoch"], "epochs_run": sel["epochs_run"], "steps": sel["optimizer_steps"],
            "cpu_s": round(time.process_time() - start, 1), "history": rec.history}
    return method.eval(), info


def auilc(methods, dataset, data, seed, split):
    scen = build_scenarios([RMFMScenario(kind="rmfm", name="rmfm", rates=RATES)], list(dataset.modalities))
    res = evaluate(methods, task_adapter(dataset.task), data, scen, EvaluationConfig(bootstrap=0), seed, split=split)
    out = {}
    for m in methods:
        out[m] = {"auilc": next(r.value for r in res.records if r.method == m and r.metric == "Non0_acc_2"
                                and r.scenario == "rmfm:AUILC"),
                  "rate0": next(r.value for r in res.records if r.method == m and r.metric == "Non0_acc_2"
                                and r.rate == 0.0)}
    return out


def shortcut_free_file(folder: Path, args, knobs: dict) -> tuple[MMSADataset, DataModule]:
    """A synthetic MOSI-format file without the bias-word shortcut, sized by ``args``, and its splits."""
    path = write_synthetic_mmsa(folder / "aligned_50.pkl", n_train=args.n_train, n_valid=args.n_valid,
                                n_test=args.n_test, seq_len=args.seq_len, dims=(768, 5, 20), seed=args.seed,
                                bias_strength_train=0.0, bias_strength_test=0.0, oracle=False, **knobs)
    dataset = MMSADataset(path, text_mode=args.text_mode, target="class3")
    return dataset, DataModule(dataset, SplitConfig(), args.seed, batch_size=32)


def fit_variants(variants: dict, dataset, data, args, work) -> tuple[dict, dict]:
    """Fit each of ``args.variants`` (``base`` is the dropout baseline, the rest CIDer variants);
    returns the fitted methods and each one's training facts."""
    fitted, infos = {}, {}
    for v in args.variants:
        run_id = ("dropout_baseline" if v == "base" else "cider") + "@" + v
        fitted[v], infos[v] = fit(run_id, variants[v], dataset, data, args, args.seed, work)
    return fitted, infos


def common_parser(description: str) -> argparse.ArgumentParser:
    """The cohort size and training settings shared by the CIDer diagnostic scripts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=300)
    p.add_argument("--n-valid", type=int, default=120)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--min-epochs", type=int, default=4)
    p.add_argument("--monitor", default="loss")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--select-on-rmfm", action="store_true",
                   help="restore each variant at its lowest validation loss averaged over the RMFM rates")
    return p


def emit(record: dict, out: Path | None) -> None:
    """Print one JSON line and append it to ``out`` (when given)."""
    line = json.dumps(record)
    print(line)
    if out:
        append_text_atomic(out, line + "\n")


def main():
    p = common_parser(__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=["base", "cider", "no_mssd", "no_rep", "no_attn", "no_rec"])
    p.add_argument("--knobs", default="{}", help="JSON: write_synthetic_mmsa keyword knobs")
    p.add_argument("--cider-extra", default="{}", help="JSON: extra CIDer options for every cider variant")
    p.add_argument("--text-mode", default="ids", choices=["ids", "features"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    knobs = json.loads(args.knobs)
    extra = json.loads(args.cider_extra)
    opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads, maci=False, **extra)
    variants = {
        "base": MethodConfig(name="dropout_baseline", fill="learned", dropout={"kind": "rmfm", "training": True},
                             keep_complete=0.3),
        "cider": MethodConfig(name="cider", **opts),
        "no_mssd": MethodConfig(name="cider", **{**opts, "mssd": False}),
        "no_rep": MethodConfig(name="cider", **{**opts, "lambda_rep": 0.0}),
        "no_attn": MethodConfig(name="cider", **{**opts, "lambda_attn": 0.0}),
        "no_rec": MethodConfig(name="cider", **{**opts, "lambda_rec": 0.0}),
        "dropout_03": MethodConfig(name="cider", **{**opts, "dropout": 0.3}),
        "attn_001": MethodConfig(name="cider", **{**opts, "lambda_attn": 0.01}),
        "attn_0003": MethodConfig(name="cider", **{**opts, "lambda_attn": 0.003}),
    }
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="cider_diag_") as tmp:
        work = Path(tmp)
        dataset, data = shortcut_free_file(work / "clean", args, knobs)
        fitted, infos = fit_variants(variants, dataset, data, args, work)
        val = auilc(fitted, dataset, data, args.seed, "val")
        test = auilc(fitted, dataset, data, args.seed, "test")
    out = {"seed": args.seed, "args": {k: str(v) for k, v in vars(args).items()}, "val": val, "test": test,
           "fit": infos, "wall_s": round(time.time() - t0, 1)}
    emit(out, args.out)


if __name__ == "__main__":
    main()

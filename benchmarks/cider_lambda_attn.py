"""CIDer's attention-distillation weight chosen on validation, on the shortcut-free file of
benchmarks/cider_mosi.py (control (a)).

With the reference normalisation of L_attn (KL batchmean over B*H maps, i.e. summed over query
rows) the reference weight lambda_attn = 0.1 weighs attention distillation ~30x more than the
former row mean did; cider_mosi.py measured that this costs CIDer AUILC. Here, per seed, CIDer is
trained with every lambda_attn of a grid; the weight with the best *validation* RMFM AUILC
(Non0_acc_2 over the 11 rates on the validation split) is kept, and only that network is scored
on the test split against the RMFM-trained dropout baseline (paired over seeds).

    python benchmarks/cider_lambda_attn.py            # 5 seeds, CPU
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustmm.config.schema import EvaluationConfig, MethodConfig, RMFMScenario, SplitConfig
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset
from robustmm.data.synth.mmsa import write_synthetic_mmsa
from robustmm.evaluate.runner import evaluate
from robustmm.methods.task import task_adapter
from robustmm.metrics.paired import paired_difference
from robustmm.missing.scenarios import build_scenarios

try:
    from benchmarks.cider_mosi import RATES, _fit
    from benchmarks.seed_runs import changed_options, command_line, run_seeds, seed_parser
except ImportError:  # pragma: no cover
    from cider_mosi import RATES, _fit
    from seed_runs import changed_options, command_line, run_seeds, seed_parser

GRID = [0.1, 0.01, 0.003]
METRIC = "Non0_acc_2"


def _auilc(methods: dict[str, Any], dataset, data, seed: int, split: str) -> dict[str, float]:
    scenarios = build_scenarios([RMFMScenario(kind="rmfm", name="rmfm", rates=RATES)], list(dataset.modalities))
    result = evaluate(methods, task_adapter(dataset.task), data, scenarios, EvaluationConfig(bootstrap=0), seed,
                      split=split)
    return {m: next(r.value for r in result.records if r.method == m and r.metric == METRIC
                    and r.scenario == "rmfm:AUILC") for m in methods}


def run_seed(seed: int, args) -> dict[str, Any]:
    opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads, maci=False)
    with tempfile.TemporaryDirectory(prefix="cider_lambda_") as tmp:
        work = Path(tmp)
        path = write_synthetic_mmsa(work / "clean" / "aligned_50.pkl", n_train=args.n_train, n_valid=args.n_valid,
                                    n_test=args.n_test, seq_len=args.seq_len, dims=(768, 5, 20), seed=seed,
                                    bias_strength_train=0.0, bias_strength_test=0.0)
        dataset = MMSADataset(path, text_mode="ids", target="class3")
        data = DataModule(dataset, SplitConfig(), seed, batch_size=32)
        base, _ = _fit("dropout_baseline", MethodConfig(name="dropout_baseline", fill="learned",
                                                        dropout={"kind": "rmfm", "training": True},
                                                        keep_complete=0.3), dataset, data, args, seed, work)
        fitted = {}
        for lam in GRID:
            # the same run id for every weight: same initialisation, only lambda_attn differs
            fitted[lam], _ = _fit("cider", MethodConfig(name="cider", lambda_attn=lam, **opts), dataset, data, args,
                                  seed, work / f"lambda_{lam}")
        val = _auilc({f"cider_{lam}": m for lam, m in fitted.items()}, dataset, data, seed, "val")
        chosen = max(GRID, key=lambda lam: (val[f"cider_{lam}"], -GRID.index(lam)))
        test = _auilc({"dropout_baseline": base, "cider_chosen": fitted[chosen], "cider_0.1": fitted[0.1]}, dataset,
                      data, seed, "test")
    return {"seed": seed, "synthetic": True, "validation_auilc": val, "chosen_lambda_attn": chosen, "test_auilc": test}


def summarise(doc: dict) -> dict:
    runs = list(doc["runs"].values())
    base = [r["test_auilc"]["dropout_baseline"] for r in runs]
    chosen = [r["test_auilc"]["cider_chosen"] for r in runs]
    ref = [r["test_auilc"]["cider_0.1"] for r in runs]
    return {"summary": {"chosen": [r["chosen_lambda_attn"] for r in runs],
                        "mean_test_auilc": {"dropout_baseline": float(np.mean(base)),
                                            "cider_chosen": float(np.mean(chosen)), "cider_0.1": float(np.mean(ref))},
                        "cider_chosen_minus_baseline": paired_difference(chosen, base).to_dict(),
                        "cider_chosen_minus_cider_0.1": paired_difference(chosen, ref).to_dict()}}


def markdown(doc: dict) -> str:
    s, runs = doc["summary"], list(doc["runs"].values())
    d1, d2 = s["cider_chosen_minus_baseline"], s["cider_chosen_minus_cider_0.1"]
    lines = ["# CIDer: lambda_attn chosen on validation (shortcut-free synthetic MOSI file, RMFM)", "",
             "SYNTHETIC DATA. The files and settings of control (a) of cider_mosi.md (MACI off), at the sizes of the "
             f"command below. Grid {GRID}; the weight with the best validation RMFM AUILC ({METRIC}) is kept; test AUILC only for it.", "",
             f"Command: `{doc['command']}`; {doc['environment']}.", "",
             "| seed | validation AUILC per lambda_attn | chosen | test: baseline | test: cider (chosen) | test: cider (0.1) |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        v = ", ".join(f"{k.split('_')[1]}: {x:.3f}" for k, x in r["validation_auilc"].items())
        t = r["test_auilc"]
        lines.append(f"| {r['seed']} | {v} | {r['chosen_lambda_attn']} | {t['dropout_baseline']:.3f} | "
                     f"{t['cider_chosen']:.3f} | {t['cider_0.1']:.3f} |")
    lines += ["", f"Mean test AUILC: {', '.join(f'{k} {v:.4f}' for k, v in s['mean_test_auilc'].items())}", "",
              f"- cider (lambda chosen on validation) - dropout_baseline: {d1['mean']:+.4f} [{d1['ci_low']:+.4f}, "
              f"{d1['ci_high']:+.4f}] ({d1['verdict']})",
              f"- cider (chosen) - cider (0.1): {d2['mean']:+.4f} [{d2['ci_low']:+.4f}, {d2['ci_high']:+.4f}] "
              f"({d2['verdict']})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = seed_parser("cider_lambda_attn", __doc__.split("\n\n")[0], [0, 1, 2, 3, 4])
    for name, default in (("n-train", 300), ("n-valid", 120), ("n-test", 200), ("seq-len", 16), ("hidden", 32),
                          ("layers", 2), ("heads", 4), ("patience", 5), ("min-epochs", 4)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args(argv)
    args.epochs = args.epochs or 10
    torch.set_num_threads(1)
    settings = {k: v for k, v in vars(args).items() if k not in ("seeds", "runs", "results")}
    run_seeds(args.results, settings, args.seeds, lambda s: run_seed(s, args), summarise, markdown,
              lambda r: f"chosen {r['chosen_lambda_attn']}, test {r['test_auilc']}",
              command=command_line("cider_lambda_attn", args, *changed_options(
                  parser, args, skip=("seeds", "runs", "results", "epochs", "bootstrap"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CIDer's MSSD positive control and its negative control on synthetic MOSI-format data (RMFM).

SYNTHETIC DATA (robustmm.data.synth.mmsa). Issue 14, acceptance item (a): CIDer above the
RMFM-trained ``dropout_baseline`` in RMFM AUILC (Non0_acc_2) with the paired interval above 0,
on a cohort built for MSSD's mechanism, and a negative control without that mechanism.

DESIGN_RATIONALE (written before any test-split number of these cohorts was looked at; the
design numbers are validation AUILC on seeds 0-1, benchmarks/cider_mssd_design.py, listed in
benchmarks/results/cider_mssd_control.md)

What can a complete-view -> masked-view self-distillation give that the label does not?
MSSD's masked step adds three label-free targets computed from the complete view of the same
utterance: L_rep (the pooled representation), L_attn (the last MCT layer's attention) and L_rec
(the dropped input frames themselves). The RMFM-trained baseline sees the same masked inputs and
the same labels. So MSSD can only win where the masked-view mapping is learnable from those
targets much faster than from the label:

- Additive redundancy does not do it. In the clean generator every frame carries the
  modality's view of the label; the baseline's masked mean pooling over surviving frames is that
  signal's own statistic, so temporal smearing or a cross-modal copy of the signal reaches the
  baseline through its pooling as well (and the oracle ceiling barely moves under RMFM).
- Label noise (idea 3) acts only through the label-free terms: the masked step still takes the
  hard label with weight 1 and the teacher is fitted on the same noisy labels. Validation
  (``label_flip`` 0.3, n_train 300 and 150): no consistent gain over the baseline or over CIDer
  without MSSD, and noisy validation labels make selection itself noisy. Not pursued.
- Not additive, and not learnable from a scalar label in this budget, is the *meaning of discrete
  tokens*: with token ids learned from scratch the baseline hardly uses the sentiment words at all
  (measured on seed 0: replacing every sentiment word of a validation batch by a filler id moves
  its logits by at most 0.02; its validation scores are identical to 16 digits whether the file
  has 30 or 100 words per polarity). If every sentiment word is also marked on its aligned audio
  frame (``word_echo``), L_rec (reconstruct a dropped audio frame from the MCT state that attends
  to the surviving token at that position) and L_rep (the masked view pulled to the complete view
  that read the audio) supervise every occurrence of every word; at test a word whose audio frame
  RMFM dropped still counts for CIDer. The first echo shared the audio sentiment direction and
  was drowned in the utterance-level view (CIDer's validation scores unchanged by it); the echo
  now has its own direction, orthogonal to the view's (``echo_directions``).
- Validation, seeds 0-1: MSSD's own share (cider - cider without MSSD) grows from +0.009/+0.018
  on the clean file to +0.049/+0.046 with ``word_echo`` audio 1.0, so the mechanism is there. But
  the baseline reads the echo too (one shared direction, mean pooling), and CIDer without MSSD
  sits 0.05-0.08 below the baseline on every echo cohort (over-fitting, cider_diagnostics.md), so
  CIDer stays below the baseline on validation (-0.026/-0.009). The last candidate makes the
  audio/vision views nearly uninformative (view noise 6.0) and words more frequent
  (sentiment_word_rate 0.3), so that the word channel (tokens + echo) carries the label.

Selection rule (fixed before the last design runs): the positive cohort is the ``word_echo``
candidate with the largest mean validation cider - dropout_baseline over seeds 0-1; its
negative control is the same cohort without the echo; the clean default file of cider_mosi.md
(a) is run as a second negative control.

MOSI-size revision (written before its confirmatory run). The first confirmatory run (seeds
10-19, 300 training utterances) measured CIDer's network without MSSD 0.016-0.028 below the
baseline: CIDer's larger network and two steps per batch over-fit a training set a quarter of
CMU-MOSI's (1284 / 229 / 686). At MOSI's split sizes (``--n-train 1284 --n-valid 229 --n-test
686``) on validation, seeds 0-3 (clean file) and 0-1 (echo), the design script gives: cider -
baseline +0.004 (clean) and +0.002 (echo); MSSD's share (cider - cider without MSSD) +0.034 on
both. So at MOSI size the network's deficit roughly cancels MSSD's gain. Confirmatory run, fresh
seeds 20-29, the same two cohorts and roles; criteria fixed now: (a) is met if cider - baseline
has its interval above 0 on the echo cohort; MSSD's mechanism is shown if its share
(cider_tau0 - cider_no_mssd) has its interval above 0 there.

Methods: ``dropout_baseline`` (fill learned, RMFM dropout in training, keep_complete 0.3),
``cider`` (MSSD + MACI, tau chosen on validation), ``cider_tau0`` (the same network, tau = 0),
``cider_no_mssd`` (the same two steps per batch without L_rep / L_attn / L_rec, MACI off): the
share of CIDer's result that is MSSD's. Scored on the test split at RMFM rates 0.0..1.0.

    python benchmarks/cider_mssd_control.py --seeds 10 11 12 13 14 15 16 17 18 19 --epochs 10 --bootstrap 0
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustmm.config.schema import MethodConfig, SplitConfig
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset
from robustmm.data.synth.mmsa import write_synthetic_mmsa

try:  # run as a script from the repository root or from benchmarks/
    from benchmarks.cider_mosi import METRICS, RATES, _fit, _score, _tau0, add_size_arguments
    from benchmarks.seed_runs import changed_options, command_line, record_cpu_seconds, run_seeds, seed_parser
    from robustmm.metrics.paired import paired_difference
except ImportError:  # pragma: no cover
    from cider_mosi import METRICS, RATES, _fit, _score, _tau0, add_size_arguments
    from seed_runs import changed_options, command_line, record_cpu_seconds, run_seeds, seed_parser
    from robustmm.metrics.paired import paired_difference

#: the cohorts: name -> (generator knobs, role)
COHORTS: dict[str, tuple[dict, str]] = {
    "echo": ({"word_echo": {"audio": 1.0}}, "positive"),  # chosen by the selection rule above
    "clean": ({}, "negative"),  # the same cohort without the echo = the clean file of cider_mosi.md (a)
}
METHODS = ("dropout_baseline", "cider", "cider_tau0", "cider_no_mssd")
COMPARISONS = {  # key -> (method, reference)
    "cider_minus_baseline": ("cider", "dropout_baseline"),
    "cider_tau0_minus_baseline": ("cider_tau0", "dropout_baseline"),
    "mssd_share_tau0_minus_no_mssd": ("cider_tau0", "cider_no_mssd"),
    "no_mssd_minus_baseline": ("cider_no_mssd", "dropout_baseline"),
}


def run_seed(seed: int, args) -> dict[str, Any]:
    opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads)
    run: dict[str, Any] = {"seed": seed, "synthetic": True, "cpu_seconds": {}}
    with tempfile.TemporaryDirectory(prefix="cider_mssd_") as tmp:
        for cohort, (knobs, _) in args.cohorts.items():
            work = Path(tmp) / cohort
            path = write_synthetic_mmsa(work / "aligned_50.pkl", n_train=args.n_train, n_valid=args.n_valid,
                                        n_test=args.n_test, seq_len=args.seq_len, dims=(768, 5, 20), seed=seed,
                                        bias_strength_train=0.0, bias_strength_test=0.0, oracle=False, **knobs)
            dataset = MMSADataset(path, text_mode="ids", target="class3")
            data = DataModule(dataset, SplitConfig(), seed, batch_size=32)
            fitted, restored = {}, {}
            for name, cfg in (
                    ("dropout_baseline", MethodConfig(name="dropout_baseline", fill="learned",
                                                      dropout={"kind": "rmfm", "training": True}, keep_complete=0.3)),
                    ("cider", MethodConfig(name="cider", **opts)),
                    ("cider_no_mssd", MethodConfig(name="cider", mssd=False, maci=False, **opts))):
                fitted[name], run["cpu_seconds"][f"{cohort}_{name}"] = _fit(name, cfg, dataset, data, args, seed, work)
                restored[name] = fitted[name].restored_epoch
            fitted["cider_tau0"] = _tau0(fitted["cider"])
            run[cohort] = _score({m: fitted[m] for m in METHODS}, dataset, data, args, seed)
            run[cohort].update(tau=fitted["cider"].tau, restored_epoch=restored)
    return run


def _pair(runs: list[dict], cohort: str, method: str, reference: str, metric: str, rate0: bool = False) -> dict:
    if rate0:
        a = [r[cohort]["curves"][method][metric][0] for r in runs]
        b = [r[cohort]["curves"][reference][metric][0] for r in runs]
    else:
        a = [r[cohort]["auilc"][method][metric] for r in runs]
        b = [r[cohort]["auilc"][reference][metric] for r in runs]
    d = paired_difference(a, b).to_dict()
    d["per_seed"] = [round(x - y, 4) for x, y in zip(a, b)]
    return d


def summarise(doc: dict) -> dict:
    runs = list(doc["runs"].values())
    cohorts = doc["settings"]["cohorts"]
    s: dict[str, Any] = {"mean_auilc": {}, "paired": {}, "paired_rate0": {}}
    for c in cohorts:
        s["mean_auilc"][c] = {m: {k: float(np.mean([r[c]["auilc"][m][k] for r in runs])) for k in METRICS}
                              for m in METHODS}
        s["paired"][c] = {key: {k: _pair(runs, c, a, b, k) for k in METRICS} for key, (a, b) in COMPARISONS.items()}
        s["paired_rate0"][c] = {key: _pair(runs, c, a, b, "Non0_acc_2", rate0=True)
                                for key, (a, b) in COMPARISONS.items()}
    checks = {}
    for c, (_, role) in cohorts.items():
        d = s["paired"][c]["cider_minus_baseline"]["Non0_acc_2"]
        if role == "positive":
            checks[f"{c}_positive_cider_above_baseline_interval_above_0"] = bool(d["ci_low"] > 0)
        else:
            checks[f"{c}_negative_cider_not_clearly_above_baseline"] = bool(d["ci_low"] <= 0)
    s["checks"] = checks
    s["tau"] = {c: [r[c]["tau"] for r in runs] for c in cohorts}
    s["restored_epoch"] = {c: {m: [r[c]["restored_epoch"][m] for r in runs]
                               for m in ("dropout_baseline", "cider", "cider_no_mssd")} for c in cohorts}
    return {"summary": s}


def _fmt(d: dict) -> str:
    agree = sum(1 for v in d["per_seed"] if np.sign(v) == np.sign(d["mean"]))
    return (f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] ({d['verdict']}; {agree}/{len(d['per_seed'])} "
            f"same sign; per seed {', '.join(f'{v:+.3f}' for v in d['per_seed'])})")


def markdown(doc: dict) -> str:
    s, st = doc["summary"], doc["settings"]
    runs = list(doc["runs"].values())
    lines = ["# CIDer MSSD positive and negative controls on SYNTHETIC MOSI-format data (RMFM)", "",
             "**SYNTHETIC DATA** (robustmm.data.synth.mmsa): the numbers check whether MSSD does what it is built to "
             "do on data planted for it; they say nothing about real CMU-MOSI.", "",
             f"Seeds {[r['seed'] for r in runs]} (confirmatory; never used in design). Design: validation split only "
             "(benchmarks/cider_mssd_design.py; seeds in DESIGN_RATIONALE). train/valid/test "
             f"{st['n_train']}/{st['n_valid']}/{st['n_test']} utterances, {st['seq_len']} positions, text as token "
             f"ids, target class3; hidden {st['hidden']}, MCT {st['layers']} x {st['heads']}, reference lambdas "
             f"0.5/0.1/0.6; at most {st['epochs']} epochs, early stopping on validation loss"
             + (" averaged over the 11 RMFM rates (training.selection.scenarios)" if st.get("select_on_rmfm") else "")
             + f" (patience {st['patience']}, at least {st['min_epochs']} epochs). All methods train with RMFM masks; test split "
             "scored at RMFM rates 0.0..1.0, AUILC = trapezoid over the 11 rates. Differences: mean over seeds "
             "[95 % t-interval] (robustmm.metrics.paired.paired_difference).", "",
             f"Command: `{doc['command']}`; {doc['environment']}.", "", "## Cohorts", ""]
    for c, (knobs, role) in st["cohorts"].items():
        lines.append(f"- **{c}** ({role} control): generator knobs `{json.dumps(knobs)}`")
    lines += ["", "Design rationale: the docstring of benchmarks/cider_mssd_control.py (DESIGN_RATIONALE), written "
              "before the confirmatory run.", "", "## Mean AUILC over seeds", "",
              "| cohort | method | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for c, methods in s["mean_auilc"].items():
        for m, vals in methods.items():
            lines.append(f"| {c} | {m} | " + " | ".join(f"{vals[k]:.4f}" for k in METRICS) + " |")
    for c in st["cohorts"]:
        lines += ["", f"## {c}: paired differences, AUILC", "", "| comparison | metric | difference [95% CI] |",
                  "|---|---|---|"]
        for key in COMPARISONS:
            for k in METRICS:
                lines.append(f"| {key} | {k} | {_fmt(s['paired'][c][key][k])} |")
            lines.append(f"| {key} | Non0_acc_2 at rate 0 | {_fmt(s['paired_rate0'][c][key])} |")
    lines += ["", "## Checks (Non0_acc_2 AUILC, cider - dropout_baseline)", ""]
    lines += [f"- {k}: **{v}**" for k, v in s["checks"].items()]
    lines += ["", "tau chosen on validation per seed: " + "; ".join(f"{c} {v}" for c, v in s["tau"].items()),
              "restored epoch (0-based) per seed: " + "; ".join(
                  f"{c} " + ", ".join(f"{m} {v}" for m, v in ms.items()) for c, ms in s["restored_epoch"].items()),
              "", "Non0_acc_2 by RMFM rate (mean over seeds):", "",
              "| cohort | method | " + " | ".join(f"{r:g}" for r in RATES) + " |", "|---|---|" + "---|" * len(RATES)]
    for c in st["cohorts"]:
        for m in METHODS:
            curve = np.mean([r[c]["curves"][m]["Non0_acc_2"] for r in runs], axis=0)
            lines.append(f"| {c} | {m} | " + " | ".join(f"{v:.3f}" for v in curve) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = seed_parser("cider_mssd_control", __doc__.split("\n\n")[0], list(range(10, 20)))
    add_size_arguments(parser)
    parser.add_argument("--cohorts", default=json.dumps(COHORTS),
                        help="JSON: cohort -> [generator knobs, 'positive' | 'negative']")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or 10
    args.cohorts = json.loads(args.cohorts) if isinstance(args.cohorts, str) else args.cohorts
    torch.set_num_threads(1)
    settings = {k: v for k, v in vars(args).items() if k not in ("seeds", "runs", "results", "bootstrap")}
    settings["bootstrap"] = args.bootstrap
    extra = changed_options(parser, args, skip=("seeds", "runs", "results", "epochs", "bootstrap", "cohorts"))
    start = time.process_time()

    def progress(run: dict) -> str:
        return "; ".join(f"{c}: cider {run[c]['auilc']['cider']['Non0_acc_2']:.3f} baseline "
                         f"{run[c]['auilc']['dropout_baseline']['Non0_acc_2']:.3f} no_mssd "
                         f"{run[c]['auilc']['cider_no_mssd']['Non0_acc_2']:.3f}" for c in args.cohorts)

    run_seeds(args.results, settings, args.seeds, lambda s: run_seed(s, args), summarise, markdown, progress,
              command=command_line("cider_mssd_control", args, *extra))
    record_cpu_seconds(args.results, start, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

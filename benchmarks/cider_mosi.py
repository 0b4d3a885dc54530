"""CIDer controls on synthetic CMU-MOSI-format data: does each part show its benefit where it
should, and stay out of the way where it should not?

Every seed writes two synthetic MMSA files (MOSI feature sizes 768/5/20, text used as token ids)
and trains on each; both methods train with RMFM masks and are scored on the test split at the
11 RMFM rates 0.0, ..., 1.0 (AUILC = trapezoid over the rates).

- **clean** file: no shortcut. The planted "bias" words are drawn from both pools whatever the
  label, in every split, so nothing but real sentiment predicts the label, and the validation
  split comes from the training distribution.
  (a) *positive control for MSSD*: ``cider`` (MSSD, MACI on) against the RMFM-trained
  ``dropout_baseline``; CIDer's AUILC should be higher (paired t-interval above 0).
  (c) *negative control for MACI*: with no shortcut, the tau chosen on validation should be
  ~0 and MACI should change nothing: |AUILC(cider) - AUILC(cider scored with tau = 0)| < 0.005.
- **shortcut** file: shortcut words that predict the label's sign in the training split only
  (strength 1.0; in validation and test they are drawn from both pools) and are more frequent
  than the real sentiment words (``--shortcut-words`` per utterance from a 100-word shortcut
  vocabulary, written by post-processing the file's token ids, see ``add_shortcut_words``).
  (b) *positive control for MACI*: ``cider`` against the same trained network scored with
  tau = 0 (``cider_tau0``); tau is chosen on the validation split (never on test), which
  carries the shift, as the test split does.

Paired differences over seeds use :func:`robustmm.metrics.paired.paired_difference` (mean and a
95 % t-interval). Writes ``benchmarks/results/cider_mosi.{json,md}``; resumable per seed.

    python benchmarks/cider_mosi.py                      # 5 seeds (CPU, 1 thread)
    python benchmarks/cider_mosi.py --seeds 0 --epochs 2 --results /tmp/cider_check   # quick check
"""

from __future__ import annotations

import copy
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustmm.config.schema import (EarlyStoppingConfig, EvaluationConfig, MethodConfig, ModelConfig, RMFMScenario,
                                    SequenceEncoderConfig, SplitConfig, TrainingConfig)
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset, converted_path, load_mmsa_npz, save_mmsa_npz
from robustmm.data.synth.mmsa import (BIAS_WORDS_NEGATIVE, BIAS_WORDS_POSITIVE, FILLER_WORDS, NEGATIVE_WORDS,
                                      POSITIVE_WORDS, write_synthetic_mmsa)
from robustmm.engine.trainer import Trainer, stable_seed
from robustmm.evaluate.runner import evaluate
from robustmm.methods.base import MethodContext, create_method
from robustmm.methods.task import task_adapter
from robustmm.metrics.paired import paired_difference
from robustmm.missing.scenarios import build_scenarios

try:  # run as a script from the repository root or from benchmarks/
    from benchmarks.seed_runs import command_line, run_seeds, seed_parser
except ImportError:  # pragma: no cover
    from seed_runs import command_line, run_seeds, seed_parser

RATES = [round(0.1 * i, 1) for i in range(11)]
METRICS = ["Non0_acc_2", "Non0_F1", "Acc_3"]
PLANTED = set(BIAS_WORDS_POSITIVE) | set(BIAS_WORDS_NEGATIVE)
SENTIMENT = set(POSITIVE_WORDS) | set(NEGATIVE_WORDS)
#: the shortcut file's shortcut vocabulary: 50 positive and 50 negative ids (the generator's 10
#: planted bias ids are among them; none is a sentiment or filler id)
SHORTCUT_POSITIVE = tuple(range(BIAS_WORDS_POSITIVE[0], BIAS_WORDS_POSITIVE[0] + 50))
SHORTCUT_NEGATIVE = tuple(range(BIAS_WORDS_NEGATIVE[0], BIAS_WORDS_NEGATIVE[0] + 50))
SHORTCUT = set(SHORTCUT_POSITIVE) | set(SHORTCUT_NEGATIVE)


def add_shortcut_words(path: Path, per_utterance: int, seed: int, aligned_splits: tuple[str, ...] = ("train",),
                       strength: float = 1.0) -> None:
    """Post-process a synthetic MMSA file (the real on-disk format) into the shortcut file:
    every utterance gets ``per_utterance`` shortcut words in all (the generator's 2 planted bias
    words are re-drawn, more are made from filler words), drawn from a 100-word shortcut
    vocabulary (:data:`SHORTCUT_POSITIVE` / :data:`SHORTCUT_NEGATIVE`). In the training split they
    follow the label's sign (neutral labels draw from both pools); in validation and test they
    come from both pools uniformly. With 100 shortcut ids, each is more frequent than any real
    sentiment word, so MACI's 100-word bias dictionary can hold the shortcut and nothing else
    (the generator's 10 bias ids leave 90 places that the frequent sentiment words fill, and a
    counterfactual that keeps the sentiment words cannot isolate the shortcut). Only the token
    ids (``text_bert``) and ``raw_text`` change; the precomputed ``text`` features are left as
    written (this benchmark reads text as ids)."""
    data = load_mmsa_npz(converted_path(path))  # the safe copy write_synthetic_mmsa wrote beside the pickle
    rng = np.random.default_rng(stable_seed(seed, "shortcut_words"))
    both = np.array(SHORTCUT_POSITIVE + SHORTCUT_NEGATIVE)
    d_text = next(iter(data.values()))["text"].shape[-1]
    # each shortcut id's fixed "BERT-like" feature vector (scale of the generator's token embeddings)
    vectors = np.random.default_rng(stable_seed(seed, "shortcut_vectors")).normal(size=(len(both), d_text))
    row_of = {int(t): k for k, t in enumerate(both)}
    for split, part in data.items():
        ids = part["text_bert"][:, 0, :]
        y = part["regression_labels"]
        text = part["text"]
        for i in range(ids.shape[0]):
            planted = np.flatnonzero(np.isin(ids[i], list(PLANTED)))
            filler = np.flatnonzero(np.isin(ids[i], FILLER_WORDS))
            extra = min(max(per_utterance - planted.size, 0), filler.size)
            positions = np.concatenate([planted, rng.choice(filler, size=extra, replace=False)])
            for pos in positions:
                if split in aligned_splits and y[i] != 0 and rng.random() < strength:
                    pool = SHORTCUT_POSITIVE if y[i] > 0 else SHORTCUT_NEGATIVE
                    ids[i, pos] = pool[rng.integers(len(pool))]
                else:
                    ids[i, pos] = both[rng.integers(len(both))]
                text[i, pos] = vectors[row_of[int(ids[i, pos])]] + 0.5 * rng.normal(size=d_text)
        part["text_bert"][:, 0, :] = ids
        part["text"] = text.astype(np.float32)
        part["raw_text"] = [" ".join(f"w{t}" for t in row[1:] if t not in (0, 101, 102)) for row in ids]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    save_mmsa_npz(data, converted_path(path), source=path)  # the loader reads this copy, never the pickle


def word_frequencies(data: DataModule, shortcut: set[int]) -> dict[str, float]:
    """Mean training-split count per distinct word id, for the planted shortcut words and the
    real sentiment words, and the share of utterances' words that are of each kind."""
    counts: dict[int, int] = {}
    n_words = 0
    for batch in data.loader("train"):
        ids = batch.inputs["text"].long()[batch.valid["text"].bool()].tolist()
        n_words += len(ids)
        for t in ids:
            counts[t] = counts.get(t, 0) + 1
    planted = [counts.get(t, 0) for t in shortcut]
    sentiment = [counts.get(t, 0) for t in SENTIMENT]
    return {"shortcut_count_per_word": float(np.mean(planted)), "sentiment_count_per_word": float(np.mean(sentiment)),
            "shortcut_share_of_tokens": sum(planted) / n_words, "sentiment_share_of_tokens": sum(sentiment) / n_words}


def _training(args) -> TrainingConfig:
    return TrainingConfig(epochs=args.epochs, batch_size=32, lr=1e-3, weight_decay=0.0, device="cpu", threads=1,
                          early_stopping=EarlyStoppingConfig(monitor="loss", patience=args.patience,
                                                             min_epochs=args.min_epochs))


def _fit(run_id: str, mcfg: MethodConfig, dataset, data, args, seed: int, work: Path) -> tuple[Any, float]:
    model = ModelConfig(embed_dim=args.hidden, trunk_hidden=args.hidden, dropout=0.1,
                        sequence=SequenceEncoderConfig(kind="gru", hidden=args.hidden))
    training = _training(args)
    torch.manual_seed(stable_seed(seed, run_id))
    ctx = MethodContext(run_id, dataset.modalities, dataset.task, model, training, seed)
    method = create_method(mcfg, ctx)
    start = time.process_time()
    method.fit(data, Trainer(training, work / run_id, seed, progress=False))
    return method.eval(), round(time.process_time() - start, 1)


def _tau0(method):
    plain = copy.deepcopy(method)
    plain.options = plain.options.model_copy(update={"maci": False})
    return plain


def _unk_counterfactual(method, data):
    """The same trained network with MACI's counterfactual words replaced by [UNK] (RMFM's
    missing-word fill, trained) instead of [MASK] (whose learned embedding is never trained when
    text comes as ids); tau chosen again on the validation split."""
    variant = copy.deepcopy(method)
    variant.options = variant.options.model_copy(update={"counterfactual_fill": "unk"})
    variant.net.counterfactual_fill = "unk"
    variant._choose_tau(data)
    return variant


def _mean_real_rows(data) -> float:
    """Mean number of real MCT query rows per utterance (aligned: 3 x the text length)."""
    rows = [3 * float(b.valid["text"].float().sum(1).mean()) for b in data.loader("train")]
    return float(np.mean(rows))


def _score(methods: dict[str, Any], dataset, data, args, seed: int) -> dict[str, Any]:
    scenarios = build_scenarios([RMFMScenario(kind="rmfm", name="rmfm", rates=RATES)], list(dataset.modalities))
    result = evaluate(methods, task_adapter(dataset.task), data, scenarios, EvaluationConfig(bootstrap=args.bootstrap),
                      seed)
    out: dict[str, Any] = {"auilc": {}, "curves": {}}
    for m in methods:
        out["auilc"][m], out["curves"][m] = {}, {}
        for metric in METRICS:
            by_rate = {r.rate: r.value for r in result.records
                       if r.method == m and r.metric == metric and r.rate is not None}
            out["curves"][m][metric] = [by_rate[rate] for rate in RATES]
            out["auilc"][m][metric] = next(r.value for r in result.records
                                           if r.method == m and r.metric == metric and r.scenario == "rmfm:AUILC")
    return out


def run_seed(seed: int, args) -> dict[str, Any]:
    cider_opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads,
                      text_recon_target=args.text_recon_target)
    run: dict[str, Any] = {"seed": seed, "synthetic": True, "cpu_seconds": {}}
    with tempfile.TemporaryDirectory(prefix="cider_controls_") as tmp:
        work = Path(tmp)
        sizes = dict(n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test, seq_len=args.seq_len,
                     dims=(768, 5, 20), seed=seed)
        # ---- clean file: controls (a) and (c)
        path = write_synthetic_mmsa(work / "clean" / "aligned_50.pkl", bias_strength_train=0.0,
                                    bias_strength_test=0.0, **sizes)
        dataset = MMSADataset(path, text_mode="ids", target="class3")
        data = DataModule(dataset, SplitConfig(), seed, batch_size=32)
        base, run["cpu_seconds"]["clean_dropout_baseline"] = _fit(
            "dropout_baseline", MethodConfig(name="dropout_baseline", fill="learned",
                                             dropout={"kind": "rmfm", "training": True}, keep_complete=0.3),
            dataset, data, args, seed, work / "clean")
        cider, run["cpu_seconds"]["clean_cider"] = _fit("cider", MethodConfig(name="cider", **cider_opts), dataset,
                                                         data, args, seed, work / "clean")
        # diagnostic: L_attn weighted as before the reference normalisation (the row-mean KL)
        rows = _mean_real_rows(data)
        rowmean, run["cpu_seconds"]["clean_cider_attn_rowmean"] = _fit(
            "cider_attn_rowmean", MethodConfig(name="cider", lambda_attn=0.1 / rows, **cider_opts), dataset, data,
            args, seed, work / "clean")
        unk = _unk_counterfactual(cider, data)
        run["clean"] = _score({"dropout_baseline": base, "cider": cider, "cider_tau0": _tau0(cider),
                               "cider_unkcf": unk, "cider_attn_rowmean": rowmean}, dataset, data, args, seed)
        run["clean"].update(tau=cider.tau, tau_curve=cider.tau_curve, frequencies=word_frequencies(data, PLANTED),
                            tau_unkcf=unk.tau, mean_real_query_rows=rows)
        # ---- shortcut file: control (b)
        path = write_synthetic_mmsa(work / "shortcut" / "aligned_50.pkl", bias_strength_train=1.0,
                                    bias_strength_test=0.0, **sizes)
        add_shortcut_words(path, args.shortcut_words, seed)
        dataset = MMSADataset(path, text_mode="ids", target="class3")
        data = DataModule(dataset, SplitConfig(), seed, batch_size=32)
        cider, run["cpu_seconds"]["shortcut_cider"] = _fit("cider", MethodConfig(name="cider", **cider_opts), dataset,
                                                            data, args, seed, work / "shortcut")
        unk = _unk_counterfactual(cider, data)
        run["shortcut"] = _score({"cider": cider, "cider_tau0": _tau0(cider), "cider_unkcf": unk}, dataset, data,
                                 args, seed)
        run["shortcut"].update(tau_unkcf=unk.tau, tau_curve_unkcf=unk.tau_curve)
        top = cider.bias_words.ids[:10]
        run["shortcut"].update(tau=cider.tau, tau_curve=cider.tau_curve, frequencies=word_frequencies(data, SHORTCUT),
                               planted_in_top10=sum(t in SHORTCUT for t in top),
                               dictionary_shortcut_words=sum(t in SHORTCUT for t in cider.bias_words.ids),
                               dictionary_sentiment_words=sum(t in SENTIMENT for t in cider.bias_words.ids),
                               dictionary_size=len(cider.bias_words.ids))
    return run


def _pairs(doc: dict, part: str, method: str, reference: str, metric: str, key: str = "auilc") -> dict:
    runs = list(doc["runs"].values())
    if key == "auilc":
        a = [r[part]["auilc"][method][metric] for r in runs]
        b = [r[part]["auilc"][reference][metric] for r in runs]
    else:  # the complete-data (rate 0) score
        a = [r[part]["curves"][method][metric][0] for r in runs]
        b = [r[part]["curves"][reference][metric][0] for r in runs]
    d = paired_difference(a, b).to_dict()
    d["per_seed"] = [round(x - y, 4) for x, y in zip(a, b)]
    return d


def summarise(doc: dict) -> dict:
    runs = list(doc["runs"].values())
    summary: dict[str, Any] = {"mean_auilc": {}, "paired": {}}
    for part, methods in (("clean", ("dropout_baseline", "cider", "cider_tau0", "cider_unkcf", "cider_attn_rowmean")),
                          ("shortcut", ("cider", "cider_tau0", "cider_unkcf"))):
        summary["mean_auilc"][part] = {m: {metric: float(np.mean([r[part]["auilc"][m][metric] for r in runs]))
                                           for metric in METRICS} for m in methods}
    summary["paired"] = {
        "a_mssd_cider_minus_baseline_clean": {m: _pairs(doc, "clean", "cider", "dropout_baseline", m) for m in METRICS},
        "b_maci_cider_minus_tau0_shortcut": {m: _pairs(doc, "shortcut", "cider", "cider_tau0", m) for m in METRICS},
        "b_maci_cider_minus_tau0_shortcut_rate0": {m: _pairs(doc, "shortcut", "cider", "cider_tau0", m, "rate0")
                                                   for m in METRICS},
        "c_maci_cider_minus_tau0_clean": {m: _pairs(doc, "clean", "cider", "cider_tau0", m) for m in METRICS},
        "b_maci_unkcf_minus_tau0_shortcut": {m: _pairs(doc, "shortcut", "cider_unkcf", "cider_tau0", m)
                                             for m in METRICS},
        "b_maci_unkcf_minus_tau0_shortcut_rate0": {m: _pairs(doc, "shortcut", "cider_unkcf", "cider_tau0", m, "rate0")
                                                   for m in METRICS},
        "c_maci_unkcf_minus_tau0_clean": {m: _pairs(doc, "clean", "cider_unkcf", "cider_tau0", m) for m in METRICS},
        "diag_attn_rowmean_minus_baseline_clean": {m: _pairs(doc, "clean", "cider_attn_rowmean", "dropout_baseline", m)
                                                   for m in METRICS},
        "diag_cider_minus_attn_rowmean_clean": {m: _pairs(doc, "clean", "cider", "cider_attn_rowmean", m)
                                                for m in METRICS},
        "a_mssd_cider_minus_baseline_clean_rate0": {m: _pairs(doc, "clean", "cider", "dropout_baseline", m, "rate0")
                                                    for m in METRICS},
    }
    a = summary["paired"]["a_mssd_cider_minus_baseline_clean"]["Non0_acc_2"]
    b = summary["paired"]["b_maci_cider_minus_tau0_shortcut"]["Non0_acc_2"]
    c = summary["paired"]["c_maci_cider_minus_tau0_clean"]["Non0_acc_2"]
    summary["checks"] = {
        "a_cider_above_baseline_interval_above_0": bool(a["ci_low"] > 0),
        "b_maci_above_tau0_interval_above_0": bool(b["ci_low"] > 0),
        "b_maci_mean_above_tau0": bool(b["mean"] > 0),
        "c_tau_zero_or_abs_difference_below_0.005": bool(all(r["clean"]["tau"] == 0 for r in runs)
                                                          or abs(c["mean"]) < 0.005),
    }
    bu = summary["paired"]["b_maci_unkcf_minus_tau0_shortcut"]["Non0_acc_2"]
    cu = summary["paired"]["c_maci_unkcf_minus_tau0_clean"]["Non0_acc_2"]
    summary["checks"].update({
        "b_unkcf_above_tau0_interval_above_0": bool(bu["ci_low"] > 0),
        "c_unkcf_tau_zero_or_abs_difference_below_0.005": bool(all(r["clean"]["tau_unkcf"] == 0 for r in runs)
                                                                or abs(cu["mean"]) < 0.005)})
    summary["tau"] = {"clean": [r["clean"]["tau"] for r in runs], "shortcut": [r["shortcut"]["tau"] for r in runs],
                      "clean_unkcf": [r["clean"]["tau_unkcf"] for r in runs],
                      "shortcut_unkcf": [r["shortcut"]["tau_unkcf"] for r in runs]}
    return {"summary": summary}


def _fmt(d: dict) -> str:
    return f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] ({d['verdict']}; " \
           f"per seed {', '.join(f'{v:+.3f}' for v in d['per_seed'])})"


def markdown(doc: dict) -> str:
    s, st = doc["summary"], doc["settings"]
    runs = list(doc["runs"].values())
    lines = ["# CIDer controls on synthetic MOSI-format data (RMFM)", "",
             "SYNTHETIC DATA (robustmm.data.synth.mmsa): numbers check the mechanisms; they say nothing about real "
             "CMU-MOSI.", "",
             f"Seeds {[r['seed'] for r in runs]} (each: its own files and initialisation). train/valid/test "
             f"{st['n_train']}/{st['n_valid']}/{st['n_test']} utterances, {st['seq_len']} positions, text as token "
             f"ids, target class3 (Non0/Has0 as in CIDer's reference evaluation). hidden {st['hidden']}, MCT "
             f"{st['layers']} layers x {st['heads']} heads, text reconstruction target {st['text_recon_target']}; at "
             f"most {st['epochs']} epochs, early stopping on validation loss (patience {st['patience']}, at least "
             f"{st['min_epochs']} epochs). Both methods train with RMFM masks; test split scored at RMFM rates "
             "0.0..1.0; AUILC = trapezoid over the 11 rates. tau chosen on the validation split (complete inputs), "
             "never on test. Differences: mean over seeds [95 % t-interval] (robustmm.metrics.paired).", "",
             f"Command: `{doc['command']}`; {doc['environment']}; CPU {doc['cpu_seconds']:.0f} s process time for "
             "the seeds run in the last invocation.", "",
             "## Files", "",
             "- **clean**: no shortcut (planted words drawn from both pools in every split); validation from the "
             "training distribution.",
             f"- **shortcut**: {st['shortcut_words']} shortcut words per utterance, from a 100-word shortcut "
             "vocabulary (50 positive, 50 negative ids), that follow the label's sign in training only (both pools "
             "in validation/test); written by post-processing the generated file's token ids "
             "(benchmarks/cider_mosi.py: add_shortcut_words).", ""]
    fr_c = np.mean([r["clean"]["frequencies"]["shortcut_count_per_word"] for r in runs])
    fr_s = np.mean([r["shortcut"]["frequencies"]["shortcut_count_per_word"] for r in runs])
    fr_w = np.mean([r["shortcut"]["frequencies"]["sentiment_count_per_word"] for r in runs])
    sh_s = np.mean([r["shortcut"]["frequencies"]["shortcut_share_of_tokens"] for r in runs])
    sh_w = np.mean([r["shortcut"]["frequencies"]["sentiment_share_of_tokens"] for r in runs])
    lines += [f"Training-split counts per distinct word (mean over seeds): shortcut words {fr_s:.0f} (clean file "
              f"{fr_c:.0f}), real sentiment words {fr_w:.1f}; share of tokens: shortcut {sh_s:.3f}, sentiment "
              f"{sh_w:.3f}.", ""]
    lines += ["## Mean AUILC over seeds", "", "| file | method | " + " | ".join(METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    for part, methods in s["mean_auilc"].items():
        for m, vals in methods.items():
            lines.append(f"| {part} | {m} | " + " | ".join(f"{vals[k]:.4f}" for k in METRICS) + " |")
    titles = {"a_mssd_cider_minus_baseline_clean": "(a) MSSD positive control: cider - dropout_baseline, clean file, AUILC",
              "b_maci_cider_minus_tau0_shortcut": "(b) MACI positive control: cider - cider(tau=0), shortcut file, AUILC",
              "b_maci_cider_minus_tau0_shortcut_rate0": "(b') the same at RMFM rate 0 (complete test inputs)",
              "c_maci_cider_minus_tau0_clean": "(c) MACI negative control: cider - cider(tau=0), clean file, AUILC",
              "b_maci_unkcf_minus_tau0_shortcut": "(b-unk) MACI with [UNK] counterfactual fill - cider(tau=0), shortcut "
                                                  "file, AUILC",
              "b_maci_unkcf_minus_tau0_shortcut_rate0": "(b-unk') the same at RMFM rate 0",
              "c_maci_unkcf_minus_tau0_clean": "(c-unk) [UNK] counterfactual fill - cider(tau=0), clean file, AUILC",
              "a_mssd_cider_minus_baseline_clean_rate0": "(a') cider - dropout_baseline at RMFM rate 0, clean file",
              "diag_cider_minus_attn_rowmean_clean": "diagnostic: cider (reference L_attn) - cider with L_attn weighted "
                                                     "as the former row mean, clean file, AUILC",
              "diag_attn_rowmean_minus_baseline_clean": "diagnostic: cider with row-mean L_attn weight - "
                                                        "dropout_baseline, clean file, AUILC"}
    for key, title in titles.items():
        lines += ["", f"## {title}", "", "| metric | difference [95% CI] |", "|---|---|"]
        for m in METRICS:
            lines.append(f"| {m} | {_fmt(s['paired'][key][m])} |")
    lines += ["", "## Checks (Non0_acc_2)", ""]
    lines += [f"- {k}: **{v}**" for k, v in s["checks"].items()]
    lines += ["", f"tau chosen on validation per seed: clean {s['tau']['clean']}, shortcut {s['tau']['shortcut']}; "
                  f"with the [UNK] fill: clean {s['tau']['clean_unkcf']}, shortcut {s['tau']['shortcut_unkcf']}",
              f"shortcut words among the 10 most frequent mined bias words: "
              f"{[r['shortcut']['planted_in_top10'] for r in runs]}; shortcut words in the mined dictionary: "
              f"{[r['shortcut'].get('dictionary_shortcut_words') for r in runs]}; real sentiment words in it: "
              f"{[r['shortcut']['dictionary_sentiment_words'] for r in runs]} of "
              f"{[r['shortcut']['dictionary_size'] for r in runs]}", "",
              "Non0_acc_2 by RMFM rate (mean over seeds):", "",
              "| file | method | " + " | ".join(f"{r:g}" for r in RATES) + " |", "|---|---|" + "---|" * len(RATES)]
    for part, methods in s["mean_auilc"].items():
        for m in methods:
            curve = np.mean([r[part]["curves"][m]["Non0_acc_2"] for r in runs], axis=0)
            lines.append(f"| {part} | {m} | " + " | ".join(f"{v:.3f}" for v in curve) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = seed_parser("cider_mosi", __doc__.split("\n\n")[0], [0, 1, 2, 3, 4])
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-valid", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--min-epochs", type=int, default=4)
    parser.add_argument("--shortcut-words", type=int, default=5)
    parser.add_argument("--text-recon-target", choices=["input", "contextual"], default="input")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or 12
    torch.set_num_threads(1)
    settings = {k: v for k, v in vars(args).items() if k not in ("seeds", "runs", "results", "bootstrap")}
    settings["bootstrap"] = args.bootstrap
    extra = [f"--{k.replace('_', '-')} {v}" for k, v in settings.items()
             if k not in ("epochs", "bootstrap") and v != parser.get_default(k)]
    start = time.process_time()

    def progress(run: dict) -> str:
        c, sh = run["clean"]["auilc"], run["shortcut"]["auilc"]
        return (f"clean: cider {c['cider']['Non0_acc_2']:.3f} baseline {c['dropout_baseline']['Non0_acc_2']:.3f} "
                f"tau0 {c['cider_tau0']['Non0_acc_2']:.3f} (tau {run['clean']['tau']}); shortcut: cider "
                f"{sh['cider']['Non0_acc_2']:.3f} tau0 {sh['cider_tau0']['Non0_acc_2']:.3f} (tau {run['shortcut']['tau']})")

    doc_header = dict(command=command_line("cider_mosi", args, *extra))
    run_seeds(args.results, settings, args.seeds, lambda s: run_seed(s, args), summarise, markdown, progress,
              cpu_seconds=0.0, **doc_header)
    # record the process time of this invocation
    import json

    path = args.results.with_suffix(".json")
    doc = json.loads(path.read_text())
    doc["cpu_seconds"] = round(time.process_time() - start, 1)
    from robustmm.io import write_json_atomic, write_text_atomic

    write_json_atomic(path, doc)
    write_text_atomic(args.results.with_suffix(".md"), markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

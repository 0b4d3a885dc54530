"""Mechanism probe for the MSSD control (benchmarks/cider_mssd_control.py): did MSSD teach CIDer's
text pathway the sentiment words' polarity through the planted ``word_echo``? SYNTHETIC DATA.

Trains dropout_baseline, CIDer (MSSD, MACI off) and CIDer without MSSD on one cohort and scores
the *validation* split (never test) with every audio frame dropped (text and vision kept, as
RMFM fills them): polar accuracy (Non0, argmax over negative/positive) with the words as they
are, and with every sentiment word replaced by a filler id; the gap is what the network reads
from the words when the echo is gone. Prints one JSON line.

    python benchmarks/cider_mssd_probe.py --seed 0 --knobs '{"word_echo": {"audio": 1.0}}'
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from robustmm.config.schema import MethodConfig, SplitConfig
from robustmm.data.datamodule import DataModule
from robustmm.data.mmsa import MMSADataset
from robustmm.data.synth.mmsa import FILLER_WORDS, sentiment_pools, write_synthetic_mmsa

try:
    from benchmarks.cider_diagnose import common_parser, emit, fit
except ImportError:  # pragma: no cover
    from cider_diagnose import common_parser, emit, fit


@torch.no_grad()
def polar_accuracy(method, data, drop: tuple[str, ...], words: bool, vocab: int) -> float:
    pos, neg = sentiment_pools(vocab)
    sentiment = torch.tensor(pos + neg)
    right = total = 0
    for batch in data.loader("val"):
        fmask = dict(batch.feature_mask)
        for m in drop:
            fmask[m] = torch.zeros_like(batch.valid[m], dtype=torch.bool)
        b = batch.with_masks(dict(batch.present), fmask)
        if not words:
            t = b.inputs["text"]
            inputs = dict(b.inputs, text=torch.where(torch.isin(t, sentiment), torch.full_like(t, FILLER_WORDS[0]), t))
            b = type(b)(**{**b.__dict__, "inputs": inputs})
        logits = method.predict(b)["logits"]
        y = b.target.long()
        keep = y != 1
        pred = torch.where(logits[:, 2] > logits[:, 0], 2, 0)
        right += int((pred[keep] == y[keep]).sum())
        total += int(keep.sum())
    return right / max(total, 1)


def main() -> None:
    p = common_parser(__doc__.split("\n\n")[0])
    p.add_argument("--knobs", default="{}")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    knobs = json.loads(args.knobs)
    vocab = int(knobs.get("sentiment_vocab", 30))
    opts = dict(hidden=args.hidden, layers=args.layers, heads=args.heads, maci=False)
    variants = {"base": MethodConfig(name="dropout_baseline", fill="learned", dropout={"kind": "rmfm", "training": True},
                                     keep_complete=0.3),
                "cider": MethodConfig(name="cider", **opts),
                "no_mssd": MethodConfig(name="cider", **{**opts, "mssd": False})}
    t0 = time.time()
    out = {}
    with tempfile.TemporaryDirectory(prefix="cider_probe_") as tmp:
        path = write_synthetic_mmsa(Path(tmp) / "d" / "a.pkl", n_train=args.n_train, n_valid=args.n_valid,
                                    n_test=args.n_test, seq_len=args.seq_len, dims=(768, 5, 20), seed=args.seed,
                                    bias_strength_train=0.0, bias_strength_test=0.0, oracle=False, **knobs)
        dataset = MMSADataset(path, text_mode="ids", target="class3")
        data = DataModule(dataset, SplitConfig(), args.seed, batch_size=32)
        for v, cfg in variants.items():
            run_id = ("dropout_baseline" if v == "base" else "cider") + "@" + v
            method, _ = fit(run_id, cfg, dataset, data, args, args.seed, Path(tmp))
            method.eval()
            out[v] = {name: round(polar_accuracy(method, data, drop, words, vocab), 4) for name, drop, words in (
                ("complete", (), True), ("audio_dropped", ("audio",), True),
                ("audio_dropped_no_words", ("audio",), False),
                ("audio_vision_dropped", ("audio", "vision"), True),
                ("audio_vision_dropped_no_words", ("audio", "vision"), False))}
    emit({"seed": args.seed, "knobs": knobs, "split": "val", "polar_accuracy": out,
          "wall_s": round(time.time() - t0, 1)}, args.out)


if __name__ == "__main__":
    main()

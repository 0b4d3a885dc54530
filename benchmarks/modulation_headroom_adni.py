"""How much could per-pattern modulation gain? Linear probes on the frozen base's features.

For every seed of a ``benchmarks/modulation_adni.py`` results JSON this loads that run's frozen
complete_only network (its checkpoint) and, for every availability pattern S (the other
modalities zero-filled, as the base and the modulation see them), fits an L2 logistic regression
on the *training* subjects that have S and scores the *validation* subjects that have S:

* ``probe_embeddings``: on the present modalities' encoder outputs (what the frozen encoders keep);
* ``probe_trunk``: on the trunk output (what the head reads; a per-pattern head on it is close to
  what a per-pattern scale and shift of the trunk's last layers can express).

Next to them: the base network's own validation AUC on S and the modulated network's (from the
run's report). ``probe_trunk - base`` is the headroom of the pattern on validation: where it is
about 0 the frozen base already reads what its features hold, and no per-pattern affine map of
those features can add much. Only training and validation subjects are used (C of the probe
chosen on validation, from 0.01, 0.1, 1): the numbers here decide cohorts, never test results.

    python benchmarks/modulation_headroom_adni.py --source benchmarks/results/modulation_adni.json

Results: benchmarks/results/<source name>_headroom.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from robustmm.config.loader import load_study
from robustmm.data.batch import all_subsets
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.io import write_json_atomic, write_text_atomic
from robustmm.methods.base import MethodContext, collect_predictions
from robustmm.methods.modulation.method import load_base_checkpoint
from robustmm.metrics.classification import auc_score
from robustmm.missing.scenarios import Subset

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "adni_mci_modulation.yaml"


def features(net, data, split: str, pattern: tuple[str, ...], seed: int) -> tuple[dict, np.ndarray]:
    def predict(batch):
        out = net(batch)
        return {"embeddings": torch.cat([out["modality_features"][m] for m in pattern], 1),
                "trunk": out["features"], "score": out["logits"][:, 1] - out["logits"][:, 0]}

    with torch.no_grad():
        p = collect_predictions(predict, data, split, torch.device("cpu"),
                                Subset(name="+".join(pattern), modalities=pattern), seed)
    keep = p.evaluable
    return {k: v[keep] for k, v in p.outputs.items()}, np.asarray(p.target)[keep]


def probe(x_fit, y_fit, x_val, y_val) -> float:
    scaler = StandardScaler().fit(x_fit)
    return max(auc_score(y_val, LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x_fit), y_fit)
                         .decision_function(scaler.transform(x_val))) for c in (0.01, 0.1, 1.0))


def seed_headroom(seed: int, run: dict, settings: dict) -> dict:
    sets = [f"seed={seed}", "training.threads=1", f"data.root={settings['data_root']}"]
    if settings.get("synthetic"):
        sets.append(f"data.synthetic={settings['synthetic']}")
    cfg = load_study(STUDY, overrides=sets)
    data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, cfg.training.batch_size, 0)
    context = MethodContext("complete_only", data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
    net = load_base_checkpoint(Path(run["run_dir"]) / "checkpoints" / "complete_only" / "complete_only.pt",
                               context, "zero").eval()
    out = {}
    for pattern in all_subsets(list(data.modalities)):
        name = "+".join(pattern)
        fit, y_fit = features(net, data, "train", pattern, seed)
        val, y_val = features(net, data, "val", pattern, seed)
        out[name] = {"n_fit": int(len(y_fit)), "n_val": int(len(y_val)),
                     "base": float(auc_score(y_val, val["score"])),
                     "modulated": float(run["validation_auc"].get(name, {}).get("modulated", float("nan"))),
                     "probe_embeddings": probe(fit["embeddings"], y_fit, val["embeddings"], y_val),
                     "probe_trunk": probe(fit["trunk"], y_fit, val["trunk"], y_val)}
    return out


def markdown(doc: dict) -> str:
    seeds = sorted(doc["seeds"], key=int)
    patterns = list(doc["seeds"][seeds[0]])
    cols = ("base", "modulated", "probe_embeddings", "probe_trunk")
    ms = lambda v: f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"  # noqa: E731
    lines = [f"# Headroom of per-pattern modulation on the frozen complete_only base ({doc['cohort']}; "
             f"{'SYNTHETIC cohort, ' if doc['synthetic'] else ''}{len(seeds)} seeds: {', '.join(seeds)})", "",
             "Validation AUC (model-selection split; probes fitted on the training subjects with the pattern) per "
             "availability pattern, mean ± sd over seeds. base: the frozen network with the other modalities "
             "zero-filled; modulated: modulation_ssf (its report); probe_embeddings / probe_trunk: L2 logistic "
             "regression on the present encoders' outputs / on the trunk output. headroom = probe_trunk − base.",
             "", "| pattern | n val | " + " | ".join(cols) + " | headroom |", "|---|---|" + "---|" * (len(cols) + 1)]
    for p in patterns + ["mean over patterns"]:
        get = (lambda k, s: doc["seeds"][s][p][k]) if p in patterns else \
            (lambda k, s: float(np.mean([doc["seeds"][s][q][k] for q in patterns])))
        n = doc["seeds"][seeds[0]][p]["n_val"] if p in patterns else ""
        cells = [ms([get(k, s) for s in seeds]) for k in cols]
        head = [get("probe_trunk", s) - get("base", s) for s in seeds]
        lines.append(f"| {p} | {n} | " + " | ".join(cells) + f" | {np.mean(head):+.3f} |")
    lines += ["", f"Command: `{doc['command']}`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT / "benchmarks" / "results" / "modulation_adni.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = json.loads(args.source.read_text())
    settings = source["settings"]
    shown = args.source.resolve()  # a source outside the repository is named by its absolute path
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    doc = {"source": str(shown), "synthetic": source["synthetic"],
           "cohort": settings.get("synthetic") or "default cohort",
           "command": f"python benchmarks/modulation_headroom_adni.py --source {shlex.quote(str(shown))}",
           "seeds": {}}
    for seed, run in sorted(source["runs"].items(), key=lambda kv: int(kv[0])):
        doc["seeds"][seed] = seed_headroom(int(seed), run, settings)
        print(f"seed {seed}: " + ", ".join(f"{p} {v['base']:.2f}/{v['probe_trunk']:.2f}"
                                            for p, v in doc["seeds"][seed].items()), flush=True)
    out = args.source.with_name(args.source.stem + "_headroom")
    write_json_atomic(out.with_suffix(".json"), doc)
    write_text_atomic(out.with_suffix(".md"), markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()

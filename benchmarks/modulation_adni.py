"""Feature modulation (ssf) vs the baselines on every modality subset of the ADNI study.

Runs ``studies/adni_mci_modulation.yaml`` (complete_only, dropout_baseline, modulation_ssf)
once per study seed (the seed sets the subject splits, initialisation and dropout/pattern
draws; the synthetic cohort is the same for every seed) and writes the test AUC of every method
on every modality subset as mean ± sd over seeds, the paired difference of modulation to each
baseline, and the trainable-parameter fraction of the modulation:

    python benchmarks/modulation_adni.py                      # seeds 0-4, the default cohort
    python benchmarks/modulation_adni.py --seeds 0 --epochs 10

The controls of issue 15 (cohorts chosen on the validation headroom that
``benchmarks/modulation_headroom_adni.py`` measures, see docs/protocols/modulation.md):

    # positive control: strong clinical scores; the frozen base mis-combines MRI and PET once
    # the clinical scores are zero-filled, while its features still carry the signal
    python benchmarks/modulation_adni.py --bootstrap 0 --control positive \
        --data-root datasets/adni_synth_clin05 --synthetic '{subjects: 480, seed: 0, clinical_noise: 0.5}' \
        --results benchmarks/results/modulation_adni_positive --runs runs/benchmarks/modulation_adni_positive
    # low-headroom cohort (run first as a negative control): weak clinical scores; on validation a
    # linear probe beats the base by +0.024 AUC here against +0.063 on the positive cohort. The
    # mechanism-free control is the complete pattern of every cohort (nothing missing to adapt to)
    python benchmarks/modulation_adni.py --bootstrap 0 --control negative \
        --data-root datasets/adni_synth_clin2 --synthetic '{subjects: 480, seed: 0, clinical_noise: 2.0}' \
        --results benchmarks/results/modulation_adni_negative --runs runs/benchmarks/modulation_adni_negative

Rerun after the volume encoders' default norm became batch (model/small3d, commit c538751; every
earlier result used instance norm), fixed before it ran: the positive cohort on fresh seeds 20-24,
criteria unchanged (ssf - complete_only, mean over the 7 subsets: interval above 0; the complete
pattern: no clear difference). Results: benchmarks/results/modulation_adni_positive_batchnorm.

``--from-runs benchmarks/results/mmanet_adni.json`` reads the three methods from the runs of
that benchmark instead (when its run folders exist).

Results: benchmarks/results/modulation_adni.{json,md} (or ``--results``). Finished seeds are kept in the JSON and
skipped when the script runs again with the same settings (an interrupted benchmark resumes).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import torch

from robustmm.data.batch import all_subsets
from seed_runs import command_line, run_seeds, run_study_seed, seed_parser
from robustmm.metrics.paired import higher_is_better, paired_difference

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "adni_mci_modulation.yaml"
MODULATION = "modulation_ssf"
METHODS = ("complete_only", "dropout_baseline", MODULATION)
MODALITIES = ("mri", "pet", "clinical")
SUBSETS = ["+".join(s) for s in all_subsets(MODALITIES)]


METRICS = ("auc", "balanced_accuracy", "brier")
ROLE_TEXT = {
    "positive": "**positive control**: a cohort whose frozen complete-data base mis-reads patterns whose features "
                "still carry the signal (validation headroom: benchmarks/results/modulation_adni_positive_headroom.md).",
    "negative": "**low-headroom cohort** (run first as a negative control): weak clinical scores; a linear probe on "
                "the frozen features beats the base by +0.024 validation AUC here against +0.063 on the positive "
                "cohort (benchmarks/results/modulation_adni_negative_headroom.md), so modulation has less, not "
                "nothing, to gain. The mechanism-free control is the complete pattern (nothing missing).",
    "none": "the default cohort (validation headroom: benchmarks/results/modulation_adni_headroom.md).",
}


#: evaluation scenarios of the benchmark (the tables below read no other)
SCENARIOS = "evaluation.scenarios=[{kind: natural}, {kind: all_subsets}]"


def run_seed(seed: int, epochs: int | None, bootstrap: int, runs: Path, data_root: Path,
             synthetic: str | None = None) -> dict:
    sets = [f"output_dir={runs}", f"data.root={data_root}", SCENARIOS]
    if synthetic:
        sets.append(f"data.synthetic={synthetic}")
    return run_study_seed(STUDY, seed, parse_run, *sets, epochs=epochs, bootstrap=bootstrap)


def parse_run(run_dir: Path) -> dict:
    """Per method and subset: test AUC, balanced accuracy, Brier score; the modulation's size."""
    run_dir = Path(run_dir)
    doc = json.loads((run_dir / "metrics.json").read_text())
    table: dict[str, dict[str, dict[str, float]]] = {k: {m: {} for m in METHODS} for k in METRICS}
    for r in doc["records"]:
        if r["metric"] in table and r["method"] in METHODS and r["scenario"] in SUBSETS + ["natural"]:
            table[r["metric"]][r["method"]][r["scenario"]] = r["value"]
    timing = json.loads((run_dir / "timing.json").read_text())
    items = doc["methods"][MODULATION]
    return {"run_dir": str(run_dir), "auc": table["auc"], "balanced_accuracy": table["balanced_accuracy"],
            "brier": table["brier"], "train_seconds": {m: timing.get(m) for m in METHODS},
            "synthetic": bool(doc["synthetic"]), "targets": items.get("targets"),
            "modulation": {k: items[k] for k in ("parameters_per_pattern", "parameters_all_patterns",
                                                 "base_parameters", "trainable_fraction",
                                                 "trainable_fraction_all_patterns", "modulated_layers")},
            "validation_auc": items["validation_auc"]}


def stats(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def summarise(runs: dict[str, dict]) -> dict:
    seeds = sorted(runs, key=int)
    scenarios = SUBSETS + ["natural"]
    out = {k: {m: {s: stats([runs[seed][k][m].get(s) for seed in seeds]) for s in scenarios} for m in METHODS}
           for k in METRICS}
    # per-seed paired differences (the same test subjects and masks for every method of a seed)
    diff = {ref: {s: stats([runs[k]["auc"][MODULATION][s] - runs[k]["auc"][ref][s] for k in seeds])
                  for s in scenarios} for ref in METHODS[:2]}
    mean_over = lambda run, m: float(np.mean([run["auc"][m][s] for s in SUBSETS]))  # noqa: E731
    subset_mean = {m: stats([mean_over(runs[k], m) for k in seeds]) for m in METHODS}

    def paired(reference: str, value, metric: str = "auc") -> dict:
        return paired_difference([value(runs[k], MODULATION) for k in seeds], [value(runs[k], reference) for k in seeds],
                                 higher_better=higher_is_better(metric)).to_dict()

    full = "+".join(MODALITIES)
    verdicts = {
        # positive control (acceptance): the missing patterns are what modulation adapts to
        "vs_complete_only:mean_over_subsets": paired("complete_only", mean_over),
        "vs_complete_only:missing_patterns": paired(
            "complete_only", lambda run, m: float(np.mean([run["auc"][m][s] for s in SUBSETS if s != full]))),
        # negative control: on the complete pattern the frozen base already is the complete-data
        # model; its modulation has nothing missing to adapt to
        "vs_complete_only:complete_pattern": paired("complete_only", lambda run, m: run["auc"][m][full]),
        "vs_complete_only:brier_mean_over_subsets": paired(
            "complete_only", lambda run, m: float(np.mean([run["brier"][m][s] for s in SUBSETS])), "brier"),
        "vs_dropout_baseline:mean_over_subsets": paired("dropout_baseline", mean_over),
    }
    fractions = [runs[k]["modulation"]["trainable_fraction"] for k in seeds]
    return {**out, "modulation_minus": diff, "mean_over_subsets": subset_mean, "paired": verdicts,
            "max_trainable_fraction": max(fractions)}


def role(doc: dict) -> str:
    """The cohort's role in the report; a cohort of one's own (``--synthetic``) without a role is not the default."""
    control, cohort = doc.get("control") or "none", doc.get("settings", {}).get("synthetic")
    return f"none; the cohort `data.synthetic: {cohort}`." if control == "none" and cohort else ROLE_TEXT[control]


def markdown(doc: dict) -> str:
    summary, runs = doc["summary"], doc["runs"]
    fmt = lambda s: f"{s['mean']:.3f} ± {s['sd']:.3f}"  # noqa: E731
    signed = lambda s: f"{s['mean']:+.3f} ± {s['sd']:.3f}"  # noqa: E731
    pfmt = lambda d: (f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], {d['agree']}/{d['n']} seeds, "  # noqa: E731
                      f"**{d['verdict']}**")
    first_run = runs[sorted(runs, key=int)[0]]
    first = first_run["modulation"]
    lines = [f"# Feature modulation (ssf) on the ADNI study ({'SYNTHETIC cohort, ' if doc['synthetic'] else ''}"
             f"{len(runs)} seeds: {', '.join(sorted(runs, key=int))})", "",
             f"Role: {role(doc)}", "",
             *([doc["note"], ""] if doc.get("note") else []),
             f"Schedule: {doc['schedule']}. {doc.get('source', '')}", "",
             f"Modulated parts: {', '.join(first_run.get('targets') or ['?'])}; {first['parameters_per_pattern']:,} "
             f"trainable parameters per pattern = {100 * first['trainable_fraction']:.3f}% of the "
             f"{first['base_parameters']:,} parameters of the frozen base network ({first['modulated_layers']} "
             f"modulated layers); all 7 patterns together {first['parameters_all_patterns']:,} = "
             f"{100 * first['trainable_fraction_all_patterns']:.2f}%.", "",
             "## Paired verdicts (modulation_ssf − reference; mean, 95 % t-interval over seeds, seeds agreeing "
             "in sign)", "", "| reference | on | role | difference |", "|---|---|---|---|"]
    control = doc.get("control") or "none"
    roles = {"vs_complete_only:mean_over_subsets": {"positive": "positive control (acceptance)",
                                                    "negative": "low-headroom cohort"
                                                    }.get(control, "all 7 subsets"),
             "vs_complete_only:missing_patterns": "the 6 patterns with a modality missing",
             "vs_complete_only:complete_pattern": "negative control (nothing missing)",
             "vs_complete_only:brier_mean_over_subsets": "calibration (Brier, lower is better)",
             "vs_dropout_baseline:mean_over_subsets": "the robust reference"}
    for key, d in summary["paired"].items():
        ref, what = key.split(":")
        lines.append(f"| {ref[3:]} | {what.replace('_', ' ')} | {roles[key]} | {pfmt(d)} |")
    lines += ["", "## Test AUC per modality subset", "",
              "Mean ± sd over seeds; the other modalities removed (zero-filled features for complete_only and "
              "modulation). Subjects without PET are not evaluable on subsets with PET.", "",
              "| subset | " + " | ".join(METHODS) + f" | {MODULATION} − complete_only | "
              f"{MODULATION} − dropout_baseline |", "|---|" + "---|" * (len(METHODS) + 2)]
    for s in SUBSETS + ["natural"]:
        cells = [fmt(summary["auc"][m][s]) for m in METHODS]
        cells += [signed(summary["modulation_minus"][ref][s]) for ref in METHODS[:2]]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| mean over the 7 subsets | " + " | ".join(fmt(summary["mean_over_subsets"][m]) for m in METHODS)
                 + " | | |")
    for key, title in (("balanced_accuracy", "Balanced accuracy (threshold 0.5)"),
                       ("brier", "Brier score (lower is better)")):
        lines += ["", f"## {title} per modality subset", "", "| subset | " + " | ".join(METHODS) + " |",
                  "|---|" + "---|" * len(METHODS)]
        lines += [f"| {s} | " + " | ".join(fmt(summary[key][m][s]) for m in METHODS) + " |"
                  for s in SUBSETS + ["natural"]]
    lines += ["", "## Validation AUC per pattern (the model-selection split)", "",
              "The frozen base (zero fill) and the modulated network on the validation subjects that have the "
              "pattern, as the modulation's report gives them; mean ± sd over seeds.", "",
              "| pattern | complete_only (base) | modulation_ssf | difference |", "|---|---|---|---|"]
    for s in SUBSETS:
        base = [runs[k]["validation_auc"][s]["base"] for k in sorted(runs, key=int)]
        mod = [runs[k]["validation_auc"][s]["modulated"] for k in sorted(runs, key=int)]
        lines.append(f"| {s} | {fmt(stats(base))} | {fmt(stats(mod))} | "
                     f"{signed(stats([b - a for a, b in zip(base, mod)]))} |")
    lines += ["", "Training seconds per seed (complete_only / dropout_baseline / modulation): "
              + "; ".join(f"seed {k}: " + " / ".join(f"{runs[k]['train_seconds'][m] or 0:.0f}" for m in METHODS)
                          for k in sorted(runs, key=int)) + ".",
              "", f"Command: `{doc['command']}`; {doc['environment']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = seed_parser("modulation_adni", __doc__.split("\n\n")[0], [0, 1, 2, 3, 4])
    parser.add_argument("--data-root", type=Path, default=ROOT / "datasets" / "adni_synth",
                        help="the cohort folder (created on first use from --synthetic)")
    parser.add_argument("--synthetic", default=None,
                        help="data.synthetic of the study, e.g. '{subjects: 480, seed: 0, clinical_noise: 2.0}' "
                             "(default: the study's, the default cohort)")
    parser.add_argument("--control", choices=["positive", "negative", "none"], default="none",
                        help="the role of the cohort in the report (issue 15's controls)")
    parser.add_argument("--note", default=None, help="a sentence printed under the role (e.g. how seeds were chosen)")
    parser.add_argument("--from-runs", type=Path, default=None,
                        help="a results JSON of benchmarks/mmanet_adni.py: read complete_only, dropout_baseline and "
                             "modulation_ssf from its per-seed study runs instead of training them again")
    args = parser.parse_args()
    torch.set_num_threads(1)

    schedule = ("the study's own (training/cpu preset: up to 40 epochs; complete_only and dropout_baseline stop "
                "early on the validation loss; modulation keeps, per pattern, the epoch with the best validation AUC "
                "on that pattern, the untrained base included, and stops when no pattern improved for 10 epochs)"
                if args.epochs is None else f"training.epochs={args.epochs} (reduced), early stopping on validation")
    if args.from_runs is not None:
        source_doc = json.loads(args.from_runs.read_text())
        rel = args.from_runs.resolve().relative_to(ROOT) if args.from_runs.resolve().is_relative_to(ROOT) \
            else args.from_runs
        command = f"python benchmarks/modulation_adni.py --seeds {' '.join(map(str, args.seeds))} --from-runs {rel}"
        schedule = source_doc.get("schedule", schedule)
        source = (f"The runs are those of `{source_doc.get('command', 'benchmarks/mmanet_adni.py')}` "
                  "(studies/adni_mci.yaml with every method in one study run per seed).")
        settings = {"from_runs": str(rel), "run_dirs": {s: r["run_dir"] for s, r in source_doc["runs"].items()}}
        run_seed_fn = lambda seed: parse_run(Path(source_doc["runs"][str(seed)]["run_dir"]))  # noqa: E731
    else:
        shown_root = args.data_root.resolve().relative_to(ROOT) if args.data_root.resolve().is_relative_to(ROOT) \
            else args.data_root
        extra = ([f"--data-root {shown_root}"] if args.data_root.resolve() != ROOT / "datasets" / "adni_synth" else []) \
            + ([f"--synthetic {shlex.quote(args.synthetic)}"] if args.synthetic else []) \
            + ([f"--results {args.results.resolve().relative_to(ROOT)}"] if args.results.resolve().is_relative_to(ROOT)
               and args.results.resolve() != ROOT / "benchmarks" / "results" / "modulation_adni" else [])
        extra += [f"--control {args.control}"] if args.control != "none" else []
        command = command_line("modulation_adni", args, *extra)
        source = (f"The study: {STUDY.relative_to(ROOT)} (complete_only, dropout_baseline, modulation_ssf), one run "
                  f"per seed, evaluated on the natural test split and every modality subset; cohort "
                  f"{args.synthetic or 'the study default (data.synthetic: {subjects: 480, seed: 0})'}.")
        settings = {"epochs": args.epochs, "bootstrap": args.bootstrap, "synthetic": args.synthetic,
                    "data_root": str(args.data_root)}
        run_seed_fn = lambda seed: run_seed(seed, args.epochs, args.bootstrap, args.runs, args.data_root,  # noqa: E731
                                            args.synthetic)
    run_seeds(args.results, settings, args.seeds, run_seed_fn,
              summarise=lambda doc: {"summary": summarise(doc["runs"])}, markdown=markdown,
              progress=lambda run: f"{run.get('seconds', 0)} s", schedule=schedule, command=command, source=source,
              control=args.control, note=args.note)


if __name__ == "__main__":
    main()

"""What ``training.selection.scenarios: evaluation`` costs in training time, with and without the
encoder outputs shared across one validation round.

    python benchmarks/selection_cost.py [--subjects 1200] [--epochs 3] [--repeats 3]

Trains ``dropout_baseline`` on the default study's synthetic ADNI cohort (32x40x32 volumes) for
``--epochs`` epochs three ways: natural selection; selection over the study's 14 evaluation scenarios
with the encoder outputs shared (the default for networks whose encoders never see the availability
pattern); the same with sharing turned off. Every fit starts from the same initial network; the two
scenario-aware fits must restore the same epoch with the same score and the same weights (checked).
The three are interleaved ``--repeats`` times and the median kept, on 1 thread.
Writes benchmarks/results/selection_cost.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from robustmm.io import write_json_atomic  # noqa: E402  (after sys.path gets the repository)
from seed_runs import default_study_data  # noqa: E402  (after sys.path gets the repository)
MODES = ("natural", "scenarios_shared", "scenarios_unshared")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=None, help="reuse a generated cohort")
    parser.add_argument("--out", type=Path, default=RESULTS / "selection_cost.json", help="results file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from robustmm.config.schema import MethodConfig
    from robustmm.engine.selection import validation_scenarios
    from robustmm.engine.trainer import Trainer
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext
    from robustmm.methods.baseline import SupervisedModule
    from robustmm.missing.scenarios import build_scenarios

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root or Path(tmp) / "adni_synth"
        cfg, data = default_study_data(root, args.subjects, f"training.epochs={args.epochs}", "training.threads=1")
        evaluation = build_scenarios(cfg.evaluation.scenarios, list(data.modalities))
        every = validation_scenarios("evaluation", evaluation, data)

        def fit(mode: str, run: int) -> tuple[float, dict, dict]:
            SupervisedModule.reuses_encoder_outputs = mode != "scenarios_unshared"
            torch.manual_seed(0)
            ctx = MethodContext("dropout_baseline", data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
            method = create_method(MethodConfig(name="dropout_baseline"), ctx)
            trainer = Trainer(cfg.training, Path(tmp) / f"{mode}_{run}", cfg.seed, progress=False,
                              selection_scenarios=[] if mode == "natural" else every)
            start = time.perf_counter()
            method.fit(data, trainer)
            seconds = time.perf_counter() - start
            return seconds, trainer.selections[-1], method.net.state_dict()

        try:
            times = {m: [] for m in MODES}
            for run in range(args.repeats):
                outcome = {}
                for mode in MODES:
                    seconds, selection, weights = fit(mode, run)
                    times[mode].append(seconds)
                    outcome[mode] = (selection, weights)
                (shared, w_shared), (unshared, w_unshared) = outcome["scenarios_shared"], outcome["scenarios_unshared"]
                same = ((shared["restored_epoch"], shared["score"]) == (unshared["restored_epoch"], unshared["score"])
                        and all(torch.equal(w_shared[k], w_unshared[k]) for k in w_shared))
                if not same:
                    raise SystemExit(f"shared and unshared encoder outputs selected differently: {shared['reason']} "
                                     f"vs {unshared['reason']}")
        finally:
            SupervisedModule.reuses_encoder_outputs = True
    median = {m: round(statistics.median(v), 2) for m, v in times.items()}
    out = {
        "what": f"dropout_baseline, {args.epochs} epochs, natural selection vs the mean over the study's "
                f"{len(every)} evaluation scenarios (encoder outputs shared across a validation round or not)",
        "subjects": args.subjects, "validation_subjects": int(len(data.indices("val"))),
        "volume_shape": list(cfg.data.volume_shape), "scenarios": [s.name for s in every],
        "median_seconds": median, "seconds": {m: [round(x, 2) for x in v] for m, v in times.items()},
        "extra_seconds_over_natural": {m: round(median[m] - median["natural"], 2) for m in MODES[1:]},
        "shared_and_unshared_restore_the_same_weights": True,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.platform(),
        "command": "python benchmarks/selection_cost.py " + shlex.join(sys.argv[1:]),
    }
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

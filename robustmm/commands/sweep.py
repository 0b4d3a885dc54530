"""``robustmm sweep STUDY.yaml``: Optuna hyper-parameter search over a study (see docs/sweeps.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from robustmm.commands import positive_int, positive_number, sigterm_interrupts
from robustmm.errors import RobustMMError
from robustmm.text import counted

STORAGE_ENV = "ROBUSTMM_SWEEP_STORAGE"
EXIT_INTERRUPTED = 130




def cmd_sweep(args: argparse.Namespace) -> int:
    import optuna

    from robustmm.config import load_study
    from robustmm.tune.plan import plan_sweep
    from robustmm.tune.sweep import run_sweep

    if args.no_final and args.final_only:
        raise RobustMMError("--no-final and --final-only exclude each other")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # robustmm logs each trial itself
    cfg = load_study(args.study, args.set, args.profile)
    plan = plan_sweep(cfg, str(args.study), n_trials=args.n_trials, timeout=args.timeout, storage=args.storage,
                      study_name=args.study_name, out=args.out)
    worker_command = [sys.executable, "-m", "robustmm.cli", "sweep", str(args.study), "--study-name", plan.study_name,
                      "--out", str(plan.sweep_dir), "--n-trials", str(plan.n_trials), "--no-final"]
    worker_command += [f"--set={s}" for s in args.set] + (["--profile", args.profile] if args.profile else [])
    worker_command += (["--timeout", str(args.timeout)] if args.timeout else []) + (["--quiet"] if args.quiet else [])

    def header(budget: int) -> None:
        if args.quiet:
            return
        why = ""
        if budget > plan.n_trials:  # a joined study's budget can be raised, never lowered
            why = f" (the budget stored with the study; {plan.n_trials} asked for here cannot lower it)"
        print(f"sweep '{plan.study_name}': {counted(budget, 'trial')}{why}, folder {plan.sweep_dir}", flush=True)

    def show(trial) -> None:
        if args.quiet:
            return
        detail = ""
        if trial.state.name == "COMPLETE":
            detail = f" {[round(v, 4) for v in trial.values]}"
        elif trial.user_attrs.get("pruned_at"):
            detail = " at epoch {epoch} of stage {stage}".format(**trial.user_attrs["pruned_at"])
        elif trial.user_attrs.get("error"):
            detail = f": {trial.user_attrs['error']}"
        print(f"trial {trial.number} {trial.state.name.lower()}{detail}", flush=True)

    try:
        with sigterm_interrupts():
            # the storage URL may hold a password: workers get it in their environment, not in argv
            result = run_sweep(plan, workers=args.workers, worker_index=args.worker_index, final=not args.no_final,
                               final_only=args.final_only, progress=not args.quiet, worker_command=worker_command,
                               worker_env={STORAGE_ENV: plan.storage_url}, on_trial_end=show,
                               on_start=header)
    except KeyboardInterrupt:
        print("robustmm: sweep interrupted; continue with the same command (running trials were queued again; "
              "an interrupted test evaluation resumes where it stopped)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.no_final:
        return 0
    print(result.summary)
    failed_workers = [c for c in result.worker_exit_codes if c != 0]
    if failed_workers:
        print(f"robustmm: {len(failed_workers)} of {args.workers} worker processes failed (exit codes "
              f"{result.worker_exit_codes}); see {plan.sweep_dir / 'logs'}", file=sys.stderr)
    if not result.finished:
        print("\nthe sweep is not finished (trials are still waiting or running elsewhere); run the same command "
              "again to continue it")
    elif not result.finalized:
        print("\nanother worker claimed the test evaluation and writes the report into its sweep folder (here: "
              "robustmm report FOLDER once it is done); if no worker is evaluating any more (it was killed), add "
              "--final-only to this command to evaluate here")
    if result.report is not None:
        print(f"\nsweep folder: {plan.sweep_dir}  (report: {result.report})")
    return 1 if failed_workers else 0


def register(sub: argparse._SubParsersAction, data: argparse._SubParsersAction,
             synth: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="tune a study with Optuna, on one machine or many workers sharing a storage",
                       description="Runs the trials of the study's 'sweep:' section (objectives on the validation "
                                   "split), then evaluates the best trial (or the Pareto front) on the test split "
                                   "and writes report.html in the sweep folder. Start the same command on any "
                                   "number of machines with one --storage to share the work.")
    p.add_argument("study", type=Path, help="study YAML file with a 'sweep:' section")
    p.add_argument("--n-trials", type=positive_int,
                   help="trials in the whole sweep (all workers together) (default: sweep.n_trials, else 20)")
    p.add_argument("--timeout", type=positive_number,
                   help="seconds after which this worker starts no new trial (default: sweep.timeout, else none)")
    p.add_argument("--storage", default=os.environ.get(STORAGE_ENV),
                   help=f"Optuna storage shared by the workers: sqlite:///FILE, postgresql://USER@HOST/DB, "
                        f"mysql+pymysql://..., or journal:FILE (default: SQLite in the sweep folder; also "
                        f"read from ${STORAGE_ENV})")
    p.add_argument("--study-name", help="Optuna study name (default: sweep.study_name, else the study's name)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes to start on this machine")
    p.add_argument("--out", type=Path, help="sweep folder (default: <output_dir>/<study>/sweeps/<study-name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config value (repeatable), e.g. --set sweep.heartbeat.interval=10")
    p.add_argument("--profile", help="apply a named profile of the study")
    p.add_argument("--worker-index", type=int, default=0,
                   help="offset of this machine's workers for sampler seeds (give each machine a distinct one "
                        "when sweep.sampler.seed is set; see docs/sweeps.md)")
    p.add_argument("--no-final", action="store_true",
                   help="only run trials: no test evaluation and no report (used for extra workers)")
    p.add_argument("--final-only", action="store_true",
                   help="run no trials: evaluate the best trial so far (with several objectives, each best "
                        "trial) on the test split and write the report")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_sweep)

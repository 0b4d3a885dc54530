"""Command line: ``robustmm run | report | data ...``.

User errors (bad study, missing files, corrupt data, existing run folder) print one clear
message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from robustmm import __version__
from robustmm.commands import fraction, int_at_least, positive_int, sigterm_interrupts, write_new_folder
from robustmm.errors import ConfigError, RobustMMError

log = logging.getLogger("robustmm")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports it


def cmd_run(args: argparse.Namespace) -> int:
    from robustmm.config import load_study
    from robustmm.study import run_study

    if args.accept_data_change and args.resume is None:
        raise ConfigError("--accept-data-change continues a run whose data changed: give that run with --resume "
                          "RUN_DIR")
    if args.rewrite_results and args.resume is None:
        raise ConfigError("--rewrite-results rewrites the results of a finished run: give that run with --resume RUN_DIR")
    # "0-4" or "0,2,5", parsed by the schema; quoted so that YAML does not read 010 as 8 or 1:30 as 90
    seeds = [f"seeds={json.dumps(args.seeds)}"] if args.seeds is not None else []
    cfg = load_study(args.study, [*args.set, *seeds], args.profile)
    if getattr(args, "nproc", None) and args.nproc > 1:
        from robustmm.engine.distributed import check_batch_size, check_processes_per_node, launch_local
        from robustmm.study import check_run_request

        # said once, before N processes start (each would print it, under torchrun's own traceback)
        check_run_request(cfg, args.out, args.resume)
        check_processes_per_node(args.nproc, cfg.training.device)
        check_batch_size(cfg.training.batch_size, args.nproc)
        return launch_local(args.nproc, args)
    # a killed run logs that it was interrupted and how to continue it; torchrun's ranks are stopped by torchrun
    # (a rank blocked in a collective could not act on it)
    from robustmm.engine.distributed import launched_by_torchrun

    try:
        with contextlib.nullcontext() if launched_by_torchrun() else sigterm_interrupts():
            result = run_study(cfg, out=args.out, resume=args.resume, progress=not args.quiet,
                               rewrite_results=args.rewrite_results, accept_data_change=args.accept_data_change)
    except KeyboardInterrupt as exc:
        run_dir = getattr(exc, "run_dir", None)
        if run_dir is None:  # before a run folder existed
            raise
        print(f"robustmm: interrupted; continue with: {resume_command(args, run_dir)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result is None or not result.summary:  # a distributed rank other than 0: rank 0 prints the summary
        return 0
    print(result.summary)
    print(f"\nrun folder: {result.run_dir}  (report: {result.run_dir / 'report.html'})")
    return 0


def resume_command(args: argparse.Namespace, run_dir: Path) -> str:
    """The command that continues ``run_dir``: the same study file and options, with --resume."""
    words = ["robustmm", "run", str(args.study)]
    words += ["--profile", args.profile] if args.profile else []
    for override in args.set:
        words += ["--set", override]
    words += ["--seeds", args.seeds] if args.seeds is not None else []
    # a rank started by `--nproc N` has no --nproc of its own: torchrun's WORLD_SIZE says N
    nproc = getattr(args, "nproc", None) or int(os.environ.get("WORLD_SIZE", "1"))
    words += ["--nproc", str(nproc)] if nproc > 1 else []
    # a rewrite stopped half way leaves new and old result files side by side (metrics.json, written last, is
    # the old one): without the option, --resume would take the run for finished and keep that mix
    words += ["--rewrite-results"] if getattr(args, "rewrite_results", False) else []
    return shlex.join([*words, "--resume", str(run_dir)])


def cmd_report(args: argparse.Namespace) -> int:
    from robustmm.report.rebuild import rebuild_report

    path = rebuild_report(Path(args.folder))
    print(f"wrote {path}")
    return 0


def cmd_synth_adni(args: argparse.Namespace) -> int:
    from robustmm.data.synth.adni import write_synthetic_adni

    out = Path(args.out)
    write_new_folder(out, lambda d: write_synthetic_adni(d, args.subjects, args.seed, args.pet_missing,
                                                         tuple(args.shape), progress=not args.quiet))
    print(f"wrote a synthetic ADNI-format cohort of {args.subjects} subjects to {out} (see {out / 'README.md'})")
    return 0


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help already names it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.option_strings and "%(default)" not in text and "default" not in text and default is not None
                and default is not False and default != [] and default is not argparse.SUPPRESS
                and not isinstance(action, argparse._VersionAction)):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """The parser of every (sub-)command: shows defaults, and takes the global flags
    (``-v``, ``--version``) after the command too (``robustmm run STUDY -v``)."""

    def __init__(self, *args, top: bool = False, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)
        # the top-level default is False; sub-commands leave it alone unless the flag is given there
        self.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                          help="log to the terminal too")
        self.add_argument("--version", action="version", version=f"robustmm {__version__}",
                          help="print the version and exit")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="robustmm", description="Multimodal models under missing modalities.", top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate every method of a study, write a report")
    run.add_argument("study", type=Path, help="study YAML file")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a config value (repeatable; applied after --profile, and the last one of a "
                          "key wins), e.g. --set training.epochs=5")
    run.add_argument("--profile", help="apply a named profile of the study (e.g. full) (default: none)")
    run.add_argument("--out", type=Path, help="run folder to create (must not exist) (default: "
                                              "<output_dir>/<name>/<timestamp>; output_dir: runs unless the study "
                                              "sets it)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--seeds", metavar="SEEDS",
                     help="run the whole study once per seed (e.g. 0-4 or 0,2,5) into seed_<s>/ and report "
                          "mean ± sd over seeds with paired differences against evaluation.compare_to (default: the "
                          "study's seeds, else one run with its seed)")
    run.add_argument("--rewrite-results", action="store_true",
                     help="with --resume on a finished run: evaluate again and rewrite its results")
    run.add_argument("--accept-data-change", action="store_true",
                     help="with --resume: continue although the data files changed since the run started (its "
                          "checkpoints were trained on the old ones), and record them as they are now")
    run.add_argument("--nproc", type=positive_int, metavar="N",
                     help="train with N processes on this machine (torchrun + DistributedDataParallel; one per GPU) "
                          "(default: 1)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="rebuild report.html of a run folder")
    report.add_argument("folder", help="a finished run folder (with metrics.json) or a sweep folder")
    report.set_defaults(func=cmd_report)

    data = sub.add_parser("data", help="create, prepare or convert data").add_subparsers(dest="data_command",
                                                                                         required=True)
    synth = data.add_parser("synth", help="write a synthetic cohort in a real on-disk format").add_subparsers(
        dest="kind", required=True)
    adni = synth.add_parser("adni", help="ADNI layout: ADNIMERGE-like table + manifest + NIfTI")
    adni.add_argument("--out", required=True, help="folder to create")
    # the bounds are those of the study's data.synthetic (robustmm.config.schema.AdniSynthConfig)
    adni.add_argument("--subjects", type=int_at_least(20), default=480, help="number of subjects, at least 20")
    adni.add_argument("--seed", type=int_at_least(0), default=0, help="random seed of the generator, at least 0")
    adni.add_argument("--pet-missing", type=fraction, default=0.3, help="fraction of subjects without PET, in [0, 1]")
    adni.add_argument("--shape", type=positive_int, nargs=3, default=[40, 48, 40], metavar=("D", "H", "W"),
                      help="native volume shape, at least 1 per axis")
    adni.add_argument("--quiet", action="store_true", help="no progress bar")
    adni.set_defaults(func=cmd_synth_adni)
    for module in command_modules():
        module.register(sub, data, synth)
    return parser


def command_modules() -> list:
    """Every module of ``robustmm.commands`` adds its commands with ``register(sub, data, synth)``
    (``sub``: top-level commands, ``data``: ``robustmm data ...``, ``synth``: ``robustmm data synth ...``)."""
    import importlib
    import pkgutil

    import robustmm.commands as pkg

    return [importlib.import_module(f"{pkg.__name__}.{info.name}") for info in pkgutil.iter_modules(pkg.__path__)]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except RobustMMError as exc:
        print(f"robustmm: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("robustmm: interrupted", file=sys.stderr)  # a run with a folder, and a sweep, say how to continue
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # our output was piped into a reader that stopped (e.g. `| head`)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so that Python's flush at exit does not fail again
            return EXIT_BROKEN_PIPE
        raise  # another pipe broke (a worker, a socket): a real error


if __name__ == "__main__":
    sys.exit(main())

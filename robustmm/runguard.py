"""Guards around a run: config-time checks, finished and failed runs, stale temporary files.

Kept out of :mod:`robustmm.study` so that the run itself reads top to bottom:

* :func:`check_before_data` -- scenario modality names (when the data section declares its
  modalities without loading), scenario and modality names that end up in file names;
* :func:`finished_result` -- resuming a run that already wrote ``metrics.json`` returns its
  results without recomputing or rewriting anything (unless the user asks);
* :func:`failed_run` -- a run that stops with an error writes the error into ``log.txt`` and the
  message says what to do with the folder.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any, Literal

from robustmm.data.declared import declared_modalities
from robustmm.data.registry import FILE_KINDS, check_data_options, check_data_root
from robustmm.errors import ConfigError, DataError, RobustMMError, RunDirectoryError
from robustmm.names import check_label
from robustmm.report.rundir import METRICS_FILE

log = logging.getLogger("robustmm")

SweepPart = Literal["trial", "final"]


def check_modality_names(modalities: list[str], where: str) -> None:
    """Modality names become parts of plot file names: refuse path characters."""
    for m in modalities:
        try:
            check_label(m, "modality name")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def in_study(cfg: Any, key: str) -> str:
    """``key`` prefixed with the study file it was read from, and marked when the command line set it
    (or a key inside it)."""
    from robustmm.config.loader import command_line_origin

    source = getattr(cfg, "source", None)
    return f"{source}: " * bool(source) + key + command_line_origin(key, getattr(cfg, "origins", {}), below=True)


def declared_scenarios(cfg: Any) -> list | None:
    """The evaluation scenarios built from the modalities the data section declares (checked
    names; a list in ``training.selection.scenarios`` is checked too), without loading data; None
    when the modalities are only known after loading."""
    from robustmm.missing.scenarios import build_scenarios

    modalities = declared_modalities(cfg.data)
    if modalities is None:
        return None
    check_modality_names(modalities, f"data (kind {cfg.data.kind})")

    def built(key: str, configs: list) -> list:
        for i, one in enumerate(configs):  # name the scenario at fault by its index
            try:
                build_scenarios([one], modalities)
            except ValueError as exc:
                raise ConfigError(f"{in_study(cfg, f'{key}.{i}')}: {exc}") from None
        try:
            return build_scenarios(configs, modalities)
        except ValueError as exc:  # names two scenarios share
            raise ConfigError(f"{in_study(cfg, key)}: {exc}") from None

    scenarios = built("evaluation.scenarios", cfg.evaluation.scenarios)
    if isinstance(cfg.training.selection.scenarios, list):
        built("training.selection.scenarios", cfg.training.selection.scenarios)
    check_method_scenarios(cfg, modalities)
    return scenarios


def check_method_scenarios(cfg: Any, modalities: list[str] | dict) -> None:
    """Build every scenario among the methods' options (training dropout, pattern scenarios) against
    the data's modality names, or, given their specs (a dict), their kinds too; ConfigError with the
    option's key path when one cannot be built."""
    from robustmm.config.schema import ScenarioBase
    from robustmm.methods.base import method_options
    from robustmm.missing.scenarios import build_scenario

    for i, m in enumerate(cfg.methods):
        options = method_options(m, f"methods.{i}", getattr(cfg, "source", None), getattr(cfg, "origins", None))
        for field in type(options).model_fields:
            value = getattr(options, field)
            for scenario in value if isinstance(value, list) else [value]:
                if isinstance(scenario, ScenarioBase):
                    try:
                        build_scenario(scenario, modalities)  # a training scenario is a single one
                    except ValueError as exc:
                        raise ConfigError(f"{in_study(cfg, f'methods.{i}.{field}')} (method '{m.run_id}'): "
                                          f"{exc}") from None


def known_metrics(cfg: Any) -> list[str] | None:
    """Metric names the study's evaluation can report, when the data section implies its task without
    loading; None when that needs the data."""
    from robustmm.data.declared import declared_task
    from robustmm.methods.task import task_adapter

    task = declared_task(cfg.data)
    if task is None:
        return None
    names = task_adapter(task, cfg.evaluation.threshold).metric_names()
    return None if names is None else list(names)


def check_monitor(cfg: Any) -> None:
    """``training.selection.monitor`` must be a metric the validation reports (the task's metrics and
    ``loss``); checked when the task is known without the data, so a misspelt name stops the run
    before a run folder is made (a method's own per-pattern names, ``auc@mri+pet``, are left to it)."""
    import difflib

    monitor = cfg.training.selection.monitor
    names = known_metrics(cfg)
    if names is None or monitor in ("loss", "primary", *names) or "@" in monitor:
        return
    valid = ["loss", "primary", *names]
    hint = difflib.get_close_matches(monitor, valid, n=1)
    raise ConfigError(f"{in_study(cfg, 'training.selection.monitor')}: '{monitor}' is not a validation metric of "
                      f"this study (data.kind {cfg.data.kind})" + (f"; did you mean '{hint[0]}'?" if hint else "")
                      + f" (use one of {valid})")


def check_before_data(cfg: Any) -> list[str] | None:
    """Checks that need no data (the device; scenario modality names; data.synthetic; the selection
    monitor; that the data root and the files its loader reads first exist), all said before a run folder
    exists; returns the declared modalities (or None when unknown)."""
    from robustmm.engine.trainer import resolve_device

    resolve_device(cfg.training.device)  # 'cuda' without a GPU
    check_data_options(cfg.data, cfg.source, cfg.origins)
    check_monitor(cfg)
    modalities = None if declared_scenarios(cfg) is None else declared_modalities(cfg.data)
    root = Path(cfg.data.root)
    if cfg.data.kind in FILE_KINDS and cfg.data.synthetic is None and not root.exists():
        # said before the run folder exists: a fix that changes data.root could not --resume it
        raise DataError(f"data root {root} does not exist; set data.root (in the study file or with --set "
                        "data.root=PATH) to your data, or give data.synthetic to create a synthetic cohort there"
                        + PUT_DATA_THERE.get(cfg.data.kind, ""))
    check_data_root(cfg.data)  # e.g. an ADNI folder without its ADNIMERGE.csv
    return modalities


#: the data commands that prepare (or check) a data kind's files where a study looks for them, named when the
#: data root is not found
PUT_DATA_THERE = {"tcga_porpoise": "; robustmm data prepare tcga --cohort COHORT --from FILE checks a downloaded "
                                   "PORPOISE table and copies it to datasets/tcga_<cohort>/",
                  "mmsa": "; robustmm data convert mmsa FILE.pkl turns a downloaded MMSA pickle into a .npz read from "
                          "then on, and robustmm data synth mmsa --out FILE writes a synthetic one",
                  "brats": "; robustmm data check brats ROOT reads a BraTS folder (one subfolder per case) as a study "
                           "would, and robustmm data synth brats --out ROOT writes synthetic cases"}


def finished_result(run_dir: Path) -> dict[str, Any] | None:
    """The stored metrics document of a finished run, or None when the run is not finished."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirectoryError(f"--resume {run_dir}: {path} cannot be read ({exc}); delete it to evaluate "
                                "the run again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise RunDirectoryError(f"--resume {run_dir}: {path} is not a robustmm metrics file; delete it to "
                                "evaluate the run again")
    return doc


def failed_run(exc: BaseException, run_dir: Path, resumed: bool, sweep_part: SweepPart | None = None,
               part_of: Path | None = None) -> None:
    """Log the error into the run's log.txt and, for a user error, add what to do with the folder.

    ``sweep_part``: the run belongs to ``robustmm sweep``, which owns the folder, so ``--resume`` is never
    the advice there (the folder's config is a trial's, not the sweep's study file, and the sweep would not
    record the result): ``"trial"``, the sweep queues an interrupted trial again under a new number;
    ``"final"``, the test evaluation of the best trial(s), which the same sweep command resumes in this
    folder (robustmm.tune.final.evaluate_trial).

    ``part_of``: the run folder of which ``run_dir`` is one seed (``seed_<s>/``). Only that folder can be
    resumed (a seed's own config is not the study's), so the advice is left to its run, which names it."""
    if isinstance(exc, KeyboardInterrupt) and part_of is not None:
        log.error("interrupted; %s is one seed of the run in %s, whose log says how to continue", run_dir, part_of)
        return
    if isinstance(exc, KeyboardInterrupt):
        if sweep_part == "trial":
            log.error("interrupted; the sweep queues this trial again: continue with the same robustmm sweep command")
        elif sweep_part == "final":
            log.error("interrupted; run the same robustmm sweep command again: it continues this test evaluation "
                      "in %s", run_dir)
        else:
            log.error("interrupted; continue with --resume %s and the study file and --set / --profile / --seeds "
                      "options it started with", run_dir)
        exc.run_dir = Path(run_dir)
        return
    log.error("run failed: %s: %s", type(exc).__name__, exc)
    if not isinstance(exc, RobustMMError):
        log.error("%s", "".join(traceback.format_exception(exc)))
    if isinstance(exc, RobustMMError) and exc.args and part_of is None:
        has_results = (Path(run_dir) / METRICS_FILE).is_file()
        if sweep_part == "trial":
            hint = (f" (sweep trial folder {run_dir}; the sweep records this error with the trial and goes on with "
                    f"the others; details in {Path(run_dir) / 'log.txt'})")
        elif sweep_part == "final":
            hint = (f" (test evaluation folder {run_dir} of the sweep; fix the problem and run the same robustmm "
                    f"sweep command again, which continues this evaluation; details in {Path(run_dir) / 'log.txt'})")
        elif resumed or has_results:
            hint = (f" (the run folder {run_dir} is unchanged apart from its log and timing.json; fix the problem "
                    "and run the same command again)")
        elif finished_seeds := sorted(p.parent.name for p in Path(run_dir).glob(f"seed_*/{METRICS_FILE}")):
            hint = (f" (the run stopped after {', '.join(finished_seeds)} of its folder {run_dir} finished, which "
                    f"--resume keeps: fix the problem and continue with --resume {run_dir}; details in "
                    f"{Path(run_dir) / 'log.txt'})")
        elif not any(Path(run_dir).rglob("checkpoints/*")):  # fold_<k>/ and seed_<s>/ runs have their own
            hint = (f" (the run stopped before training anything; its folder {run_dir} holds only its config, log "
                    f"and records and can be removed; fix the problem and start again; details in "
                    f"{Path(run_dir) / 'log.txt'})")
        else:
            hint = (f" (the run stopped; its folder {run_dir} holds no results and can be removed, or, when the fix "
                    f"leaves the study unchanged, continue it with --resume {run_dir}; details in "
                    f"{Path(run_dir) / 'log.txt'})")
        exc.args = (f"{exc.args[0]}{hint}", *exc.args[1:])

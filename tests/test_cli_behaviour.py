"""The command line behaves like the tools users know: global flags after the command,
--version, fast --help (no torch), defaults in every option's help, data check for every kind;
warnings raised during a run go to the log, counted."""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from robustmm import __version__
from robustmm.cli import build_parser, main
from robustmm.report.caught import warnings_to_log

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "optuna", "torchaudio", "monai", "lifelines", "sksurv")


def _loaded_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_help_and_config_validation_import_no_torch() -> None:
    helps = ("for argv in (['--help'], ['run', '--help'], ['data', 'synth', 'brats', '--help'], "
             "['data', 'check', 'adni', '--help'], ['sweep', '--help'], ['generate', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass")
    assert _loaded_after("from robustmm.cli import main\nimport io, contextlib\n"
                         "with contextlib.redirect_stdout(io.StringIO()):\n"
                         + "\n".join("    " + line for line in helps.splitlines())) == []
    assert _loaded_after("from robustmm.config import load_study\nload_study('studies/adni_mci.yaml', [], None)\n"
                         "load_study('studies/brats_missing.yaml', [], None)") == []
    loaded = _loaded_after("import robustmm")
    assert not {"transformers", "optuna", "torchaudio", "torch"} & set(loaded)


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"robustmm {__version__}"
    out = subprocess.run([sys.executable, "-m", "robustmm.cli", "report", "--version"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"robustmm {__version__}"


def test_global_flags_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "s.yaml"]).verbose is False
    assert parser.parse_args(["-v", "run", "s.yaml"]).verbose is True
    assert parser.parse_args(["run", "s.yaml", "-v"]).verbose is True
    assert parser.parse_args(["data", "synth", "adni", "--out", "x", "--verbose"]).verbose is True
    assert parser.parse_args(["report", "RUN", "-v"]).verbose is True


def _options(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, path + (name,))
        elif action.option_strings:
            yield path, action, parser


def test_every_option_help_shows_its_default() -> None:
    checked = 0
    for path, action, parser in _options(build_parser()):
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = parser.formatter_class("x")._expand_help(action) if action.help else ""
        assert "default" in text, f"robustmm {' '.join(path)} {action.option_strings[0]}: {text!r}"
        checked += 1
    assert checked > 30
    assert "(default: 40)" in _sub_help(["data", "synth", "brats"])


def test_every_argument_of_every_command_says_what_it_is() -> None:
    # a help made of its default alone ("(default: 40)") does not say what the option does
    missing = []

    def walk(parser: argparse.ArgumentParser, path: tuple) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + (name,))
            elif not isinstance(action, argparse._HelpAction):
                text = (action.help or "").replace("(default: %(default)s)", "").strip()
                if not text:
                    missing.append(f"robustmm {' '.join(path)} {(action.option_strings or [action.dest])[0]}")

    walk(build_parser(), ())
    assert missing == []


def test_options_whose_default_comes_from_elsewhere_say_which_and_it_is_the_real_one() -> None:
    # these had no default in --help (None to argparse), though each falls back to something
    from robustmm.config.schema import StudyConfig
    from robustmm.tune.config import SweepConfig

    run = " ".join(_sub_help(["run"]).split())
    assert "(default: <output_dir>/<name>/<timestamp>; output_dir: runs unless the study sets it)" in run
    assert StudyConfig.model_fields["output_dir"].default == Path("runs")
    assert "(default: the study's seeds, else one run with its seed)" in run
    assert "(default: none)" in run and "(default: 1)" in run  # --profile, --nproc
    assert "the last one of a key wins" in run
    from robustmm.config import load_study

    epochs = ["training.epochs=3", "training.epochs=5"]  # the profile full says 120
    assert load_study(REPO / "studies" / "adni_mci.yaml", epochs, profile="full").training.epochs == 5
    sweep = " ".join(_sub_help(["sweep"]).split())
    assert f"(default: sweep.n_trials, else {SweepConfig.model_fields['n_trials'].default})" in sweep
    assert SweepConfig.model_fields["timeout"].default is None and "(default: sweep.timeout, else none)" in sweep


def _sub_help(argv: list[str]) -> str:
    parser = build_parser()
    for name in argv:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser.format_help()


def test_data_check_knows_every_data_kind(tiny_adni_root: Path, capsys) -> None:
    import typing

    from robustmm.config.schema import AdniDataConfig, GenericDataConfig

    kinds = set(typing.get_args(GenericDataConfig.model_fields["kind"].annotation))
    kinds |= set(typing.get_args(AdniDataConfig.model_fields["kind"].annotation))
    help_text = _sub_help(["data", "check"])
    for kind in kinds:
        assert kind in help_text, kind
    assert main(["data", "check", "adni", str(tiny_adni_root), "--option", "volume_shape=[16,16,16]", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "60 subjects" not in out  # exclusions are applied, as in a study
    assert "sMCI: " in out and "pMCI: " in out and "pet " in out and "excluded: " in out
    assert main(["data", "check", "table", str(tiny_adni_root)]) == 2  # options missing: a clear error
    err = capsys.readouterr().err
    # that also says where data check takes the options from (the study file it would name has none)
    assert "data.options.id_column" in err and err.rstrip().endswith(
        "data check takes data options from --option KEY=VALUE (one per key, e.g. --option id_column=PTID) or from "
        "a study's data section with --study STUDY")


def test_warnings_go_to_the_log_counted(caplog, capsys) -> None:
    log = logging.getLogger("robustmm.test")
    with caplog.at_level(logging.INFO, logger="robustmm.test"):
        with warnings_to_log(log) as caught:
            for _ in range(3):
                warnings.warn("divide by zero in some library", RuntimeWarning)
            warnings.warn("old API", UserWarning)
    assert caught.total == 4 and len(caught.counts) == 2
    assert capsys.readouterr().err == ""
    text = caplog.text
    assert text.count("divide by zero in some library") == 2  # first occurrence + the count at the end
    assert "RuntimeWarning occurred 3 times" in text and "4 warnings of 2 kinds" in text


def test_filters_set_by_the_user_keep_precedence() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning):
            with warnings_to_log():
                warnings.warn("must raise", RuntimeWarning)


@pytest.mark.parametrize("command", [["data", "synth", "adni", "--subjects", "20"], ["data", "synth", "brats"],
                                     ["data", "synth", "dispro"], ["data", "synth", "porpoise"]])
def test_synth_refuses_an_output_that_is_a_file_or_a_non_empty_folder(command, tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main([*command, "--out", str(a_file)]) == 2
    assert f"--out {a_file} is a file; choose a new folder" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep me")
    assert main([*command, "--out", str(folder)]) == 2
    assert f"--out {folder} exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_run_and_report_name_what_is_wrong_with_the_folder_given(tmp_path: Path, capsys) -> None:
    study = str(REPO / "studies" / "adni_mci.yaml")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["run", study, "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "--resume" not in err and a_file.read_text() == "keep me"
    other = tmp_path / "other"
    other.mkdir()
    assert main(["run", study, "--out", str(other)]) == 2
    assert "--resume" not in capsys.readouterr().err  # not a run folder: nothing to continue
    assert main(["run", study, "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such folder; give a finished run folder (with metrics.json) or a sweep folder" in capsys.readouterr().err


@pytest.mark.parametrize("kind, args, message", [
    ("porpoise", ["--rnaseq", "0"], "argument --rnaseq: must be at least 5 (got 0)"),
    ("porpoise", ["--patients", "-5"], "argument --patients: must be at least 20 (got -5)"),
    ("porpoise", ["--age-missing", "1.5"], "argument --age-missing: must be a fraction in [0, 1] (got 1.5)"),
    ("porpoise", ["--cohort", "../x"], "use lower-case letters and digits only"),
    ("dispro", ["--patches", "10", "5"], "argument --patches: MIN 10 is larger than MAX 5; give MIN <= MAX"),
    ("dispro", ["--genes", "5", "2"], "argument --genes: MIN 5 is larger than MAX 2"),
    ("dispro", ["--patches", "0", "5"], "argument --patches: must be at least 1 (got 0)"),
    ("dispro", ["--wsi-dim", "0"], "argument --wsi-dim: must be at least 2 (got 0)"),
    ("dispro", ["--omics-missing", "nan"], "must be a fraction in [0, 1]"),
    ("adni", ["--shape", "0", "4", "4"], "argument --shape: must be at least 1 (got 0)"),
    ("adni", ["--seed", "-1"], "argument --seed: must be at least 0 (got -1)"),
    ("adni", ["--pet-missing", "1.5"], "argument --pet-missing: must be a fraction in [0, 1] (got 1.5)"),
    ("adni", ["--subjects", "0"], "argument --subjects: must be at least 20 (got 0)"),
    ("brats", ["--shape", "7", "16", "16"], "argument --shape: must be at least 8 (got 7)"),
    ("brats", ["--cases", "3"], "argument --cases: must be at least 4 (got 3)"),
    ("brats", ["--seed", "-2"], "argument --seed: must be at least 0 (got -2)"),
])
def test_synth_arguments_are_checked_before_anything_is_written(kind, args, message, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["data", "synth", kind, "--out", str(out), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_synth_leaves_nothing_behind_and_can_be_run_again(tmp_path: Path, capsys, monkeypatch) -> None:
    import torch

    from robustmm.data.synth import tcga

    out = tmp_path / "out"
    # patients per fold: only the generator can tell
    assert main(["data", "synth", "dispro", "--out", str(out), "--patients", "10", "--folds", "6"]) == 2
    assert "2 patients per fold" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    saved = []

    def fail_after_some(obj, path):  # stands for a full disk or a kill in the middle of the bags
        if len(saved) == 3:
            raise OSError("No space left on device")
        saved.append(path)
        torch.save(obj, path)

    monkeypatch.setattr(tcga.torch, "save", fail_after_some)
    with pytest.raises(OSError):
        main(["data", "synth", "dispro", "--out", str(out), "--patients", "10", "--folds", "2"])
    assert len(saved) == 3 and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    out.mkdir()  # an empty folder is as good as none
    assert main(["data", "synth", "dispro", "--out", str(out), "--patients", "10", "--folds", "2"]) == 0
    assert (out / "splits.csv").is_file() and list(tmp_path.iterdir()) == [out]
    # an empty folder behind a link (or a mount point) cannot be renamed over: it is filled in place
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    assert main(["data", "synth", "porpoise", "--out", str(link), "--patients", "40"]) == 0
    assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == ["SYNTHETIC_DATA.json",
                                                                            "tcga_syn_all_clean.csv.zip"]


def test_resume_command_repeats_the_options_and_the_process_count(monkeypatch) -> None:
    import argparse

    from robustmm.cli import resume_command

    args = argparse.Namespace(study="my study.yaml", profile="full", set=["training.lr=0.01"], seeds="0-4", nproc=None)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resume_command(args, Path("runs/x")) == ("robustmm run 'my study.yaml' --profile full --set training.lr=0.01 "
                                                    "--seeds 0-4 --resume runs/x")
    monkeypatch.setenv("WORLD_SIZE", "4")  # printed by rank 0 of `--nproc 4`, whose own argv has no --nproc
    assert resume_command(args, Path("runs/x")).endswith("--seeds 0-4 --nproc 4 --resume runs/x")
    args.rewrite_results = True  # an interrupted rewrite is finished by rewriting again, not by a plain resume
    assert resume_command(args, Path("runs/x")).endswith("--nproc 4 --rewrite-results --resume runs/x")


def test_data_check_adni_fits_the_training_split_as_a_study_does(tiny_adni_root: Path, tiny_study: Path,
                                                                 tmp_path: Path, capsys) -> None:
    import shutil

    import pandas as pd

    from robustmm.config.schema import AdniDataConfig, SplitConfig
    from robustmm.data.adni import AdniDataset
    from robustmm.data.datamodule import DataModule, subject_splits

    shape = ["--option", "volume_shape=[16,16,16]", "--quiet"]
    ds = AdniDataset(AdniDataConfig(root=tiny_adni_root, volume_shape=(16, 16, 16), cache=False), progress=False)
    data = DataModule(ds, SplitConfig(), seed=0)
    imputed = ds.report.imputed
    assert imputed  # the generator leaves TAU / PTAU empty for some subjects
    assert main(["data", "check", "adni", str(tiny_adni_root), *shape]) == 0
    out = capsys.readouterr().out
    for column, cells in imputed.items():
        word = "cell" if cells == 1 else "cells"
        assert f"imputed: {cells} {word} of {column} (filled with the training-split mean)" in out
    sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.as_dict().items())
    assert f"split (seed 0): {sizes}; fitted on the training split" in out
    # nan_policy: error stops the check as it stops the run
    assert main(["data", "check", "adni", str(tiny_adni_root), *shape, "--option", "nan_policy=error"]) == 2
    err = capsys.readouterr().err
    assert "NaN in clinical columns ['TAU', 'PTAU']" in err and "Traceback" not in err
    # MMSE empty for exactly the subjects of the default training split: refused with the defaults,
    # read with the study's seed (another training split)
    root = tmp_path / "cohort"
    shutil.copytree(tiny_adni_root, root)
    train = {ds.subjects[i] for i in subject_splits(ds, SplitConfig(), 0).train}
    table = pd.read_csv(root / "ADNIMERGE.csv")
    table.loc[table["PTID"].isin(train), "MMSE"] = None
    table.to_csv(root / "ADNIMERGE.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one error line: no numpy warning about the empty column before it
        assert main(["data", "check", "adni", str(root), *shape]) == 2
    assert "clinical column ['MMSE'] is empty for every training subject" in capsys.readouterr().err
    assert main(["data", "check", "adni", str(root), "--study", str(tiny_study), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "split (seed 3): " in out and re.search(r"imputed: (1 cell|\d+ cells) of MMSE", out)
    # every training split of a study with split.fold: all is fitted
    folds = ["--set", "split.folds=3", "--set", "split.fold=all"]
    assert main(["data", "check", "adni", str(tiny_adni_root), "--study", str(tiny_study), *folds, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert all(f"split (seed 3, fold {k}): " in out for k in range(3))


@pytest.mark.parametrize("kind, args, module, count", [
    ("adni", ["--subjects", "20", "--shape", "8", "8", "8", "--quiet"], "adni", 5),
    ("brats", ["--cases", "4", "--shape", "8", "8", "8"], "brats", 6),
])
def test_synth_adni_and_brats_write_all_or_nothing(kind, args, module, count, tmp_path: Path, monkeypatch,
                                                   capsys) -> None:
    import importlib

    synth = importlib.import_module(f"robustmm.data.synth.{module}")
    save = synth.nib.save
    saved = []

    def fail_after_some(image, path):  # a full disk in the middle of the volumes
        if len(saved) == count:
            raise OSError("No space left on device")
        saved.append(path)
        save(image, path)

    out = tmp_path / "out"
    monkeypatch.setattr(synth.nib, "save", fail_after_some)
    with pytest.raises(OSError):
        main(["data", "synth", kind, "--out", str(out), *args])
    assert len(saved) == count and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert main(["data", "synth", kind, "--out", str(out), *args]) == 0
    assert (out / "README.md").is_file() and list(tmp_path.iterdir()) == [out]


def test_synth_killed_with_sigterm_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # the third volume written sends SIGTERM to the process itself (a scheduler's kill)
    script = ("import os, signal, sys\nfrom robustmm.data.synth import adni\nfrom robustmm.cli import main\n"
              "save, saved = adni.nib.save, []\n"
              "def kill_after_some(image, path):\n"
              "    saved.append(path)\n"
              "    if len(saved) == 3:\n"
              "        os.kill(os.getpid(), signal.SIGTERM)\n"
              "    save(image, path)\n"
              "adni.nib.save = kill_after_some\n"
              f"sys.exit(main(['data', 'synth', 'adni', '--out', {str(out)!r}, '--subjects', '20', "
              "'--shape', '8', '8', '8', '--quiet']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 130, done.stderr
    assert "robustmm: interrupted" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_rewrite_results_without_resume_is_refused(tmp_path: Path, capsys) -> None:
    # it was ignored: a new run was trained from scratch
    assert main(["run", str(Path(__file__).resolve().parents[1] / "studies" / "adni_mci.yaml"), "--rewrite-results",
                 "--out", str(tmp_path / "run")]) == 2
    assert "--rewrite-results rewrites the results of a finished run: give that run with --resume" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()

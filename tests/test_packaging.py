"""Packaging: the presets (``include: [...]`` and the method defaults) ship inside the package, so a
plain (non-editable) install runs the shipped studies, not only a repository checkout."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "robustmm"


def _package_data_globs() -> list[str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["package-data"]["robustmm"]


def _included_names(study: Path) -> set[str]:
    """Every preset name a study includes, following includes inside presets."""
    names: set[str] = set()
    todo = [study]
    while todo:
        raw = yaml.safe_load(todo.pop().read_text(encoding="utf-8")) or {}
        include = raw.get("include") or []
        for name in [include] if isinstance(include, str) else include:
            preset = PACKAGE / "presets" / f"{name}.yaml"
            if name not in names:
                names.add(name)
                if preset.is_file():
                    todo.append(preset)
    return names


def test_presets_live_in_the_package_and_package_data_covers_them() -> None:
    from robustmm.config.loader import PACKAGE_PRESETS

    assert PACKAGE_PRESETS == PACKAGE / "presets"
    presets = sorted(PACKAGE_PRESETS.rglob("*.yaml"))
    assert presets, "no preset under robustmm/presets"
    globs = _package_data_globs()
    # setuptools expands package-data patterns as recursive globs relative to the package folder
    covered = {PACKAGE / f for g in globs for f in glob.glob(g, root_dir=PACKAGE, recursive=True)}
    uncovered = [p.relative_to(PACKAGE).as_posix() for p in presets if p not in covered]
    assert not uncovered, f"presets that are not package data ({globs}): {uncovered}"
    # one source of truth: no preset folder outside the package that a checkout alone would find
    assert not (REPO / "configs").exists()


def test_every_include_and_method_default_resolves_inside_the_package() -> None:
    from robustmm.config.loader import preset_file
    from robustmm.methods.mmanet import DEFAULTS_FILE as MMANET_DEFAULTS
    from robustmm.methods.modulation.method import DEFAULTS_FILE as MODULATION_DEFAULTS

    for path in (MMANET_DEFAULTS, MODULATION_DEFAULTS):
        assert path.is_file() and path.is_relative_to(PACKAGE / "presets"), path
    for study in sorted((REPO / "studies").glob("*.yaml")):
        for name in _included_names(study):
            assert preset_file(name).is_file(), f"{study.name} includes {name}, not in robustmm/presets"


# run in the unzipped wheel with cwd outside the repository: only the installed package can
# provide the presets there
_CHECK_INSTALLED = """
import sys
from pathlib import Path

import robustmm
site = Path(sys.argv[1]).resolve()
assert Path(robustmm.__file__).resolve().is_relative_to(site), f"imported {robustmm.__file__}, not the wheel"
from robustmm.config import load_study
from robustmm.config.loader import preset_dirs, preset_file

study = Path("studies/adni_mci.yaml")
assert [d.resolve() for d in preset_dirs(study)] == [site / "robustmm" / "presets"], preset_dirs(study)
cfg = load_study(study, ["training.epochs=1"])
assert cfg.training.epochs == 1 and cfg.training.batch_size > 0
assert [s.kind for s in cfg.evaluation.scenarios] == ["natural", "modality_rate", "all_subsets"]
for name in ("methods/mmanet", "methods/modulation", "methods/itcfn"):
    assert preset_file(name).is_file(), name
print("ok")
"""


def test_wheel_ships_presets_and_a_plain_install_resolves_includes(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources (no build/ left in the checkout), unzip it and
    load the default study from a folder outside the repository (about 2 s: the build is offline,
    with the setuptools already installed)."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / "robustmm", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
                            "-w", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("robustmm-*.whl")

    # every preset in the checkout, and at least those the default study and the method defaults need
    shipped = {p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "presets").rglob("*.yaml")}
    shipped |= {f"presets/{name}.yaml" for name in _included_names(REPO / "studies" / "adni_mci.yaml")}
    shipped |= {"presets/methods/mmanet.yaml", "presets/methods/modulation.yaml"}
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {n.removeprefix("robustmm/") for n in archive.namelist() if n.endswith(".yaml")}
        site = tmp_path / "site"
        archive.extractall(site)
    assert shipped <= in_wheel, f"presets missing from the wheel: {sorted(shipped - in_wheel)}"

    work = tmp_path / "elsewhere"
    (work / "studies").mkdir(parents=True)
    shutil.copy2(REPO / "studies" / "adni_mci.yaml", work / "studies" / "adni_mci.yaml")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    check = subprocess.run([sys.executable, "-c", _CHECK_INSTALLED, str(site)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and check.stdout.strip() == "ok", check.stdout + check.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_is_recorded_only_for_robustmms_own_checkout(tmp_path):
    """An installed copy inside someone else's repository must not report that repository's commit."""
    from robustmm.report.rundir import git_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "README").write_text("user project\n")
    git("add", "README")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    installed = tmp_path / ".venv" / "lib" / "python3" / "site-packages"
    installed.mkdir(parents=True)

    assert git_commit(tmp_path) == head
    assert git_commit(installed) is None
    (tmp_path / "README").write_text("edited\n")
    assert git_commit(tmp_path) == head + "+dirty"

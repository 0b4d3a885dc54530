"""Each method's build-time checks (``Method.check_setup``) run from ``check_data``, which the study
calls for every method before the first one trains, so a later method's mismatch costs no training."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from robustmm.config import load_study
from robustmm.config.schema import MethodConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.errors import ConfigError
from robustmm.methods.base import method_class, method_options
from robustmm.study import run_study

REPO = Path(__file__).resolve().parents[1]
ADNI = {"mri": ModalitySpec("mri", "volume", (1, 8, 8, 8)), "pet": ModalitySpec("pet", "volume", (1, 8, 8, 8)),
        "clinical": ModalitySpec("clinical", "table", (5,))}
BINARY = TaskSpec("binary", 2)


def _check(name: str, specs: dict, task: TaskSpec, **options) -> None:
    opts = method_options(MethodConfig(name=name, **options), "methods.1")
    method_class(name).check_data(opts, SimpleNamespace(modalities=specs, task=task), name)


@pytest.mark.parametrize("name, specs, task, options, message", [
    ("mmanet", {"clinical": ADNI["clinical"]}, BINARY, {}, r"'mmanet' \(mmanet\) needs at least two modalities"),
    ("classical", ADNI, TaskSpec("segmentation", 4), {}, r"'classical' \(classical\) does not support segmentation"),
    ("classical", ADNI, BINARY, {"modalities": ["mri", "ct"]}, r"option modalities names \['ct'\]"),
    ("pattern_ensemble", ADNI, TaskSpec("segmentation", 4), {}, r"\(pattern_ensemble\) does not support segmentation"),
    ("itcfn", ADNI, TaskSpec("survival", 4), {}, r"'itcfn' \(itcfn\) classifies; the data's task is 'survival'"),
    ("itcfn", ADNI, BINARY, {"clinical": "pet"}, r"clinical modality 'pet' is a volume, not a table"),
    ("itcfn", ADNI, BINARY, {"pet": "fdg"}, r"pet: 'fdg' is not a modality of the data"),
])
def test_check_data_refuses_what_the_method_cannot_be_built_for(name, specs, task, options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _check(name, specs, task, **options)


@pytest.mark.parametrize("name", ["mmanet", "classical", "pattern_ensemble", "itcfn", "modulation"])
def test_check_data_accepts_the_adni_setup(name) -> None:
    _check(name, ADNI, BINARY)


def test_a_late_method_that_cannot_run_stops_the_study_before_the_first_one_trains(tmp_path: Path) -> None:
    cfg = load_study(REPO / "studies" / "adni_mci.yaml",
                     [f"data.root={tmp_path / 'cohort'}", f"output_dir={tmp_path / 'runs'}",
                      "data.synthetic.subjects=60", "data.synthetic.native_shape=[8,8,8]", "data.volume_shape=[8,8,8]",
                      "training.device=cpu", "methods=[{name: dropout_baseline}, "
                                             "{name: classical, modalities: [mri, fdg]}]"])
    with pytest.raises(ConfigError, match=r"option modalities names \['fdg'\]"):
        run_study(cfg, progress=False)
    assert not list((tmp_path / "runs").rglob("checkpoints/*/*"))


def test_options_written_under_an_options_key_get_the_inline_form() -> None:
    with pytest.raises(ConfigError, match=r"^study.yaml: 'methods.1.options': a method's options sit next to its "
                                          r"name, not under 'options:' \(e.g. \{name: mmanet, lambda_mad: 2\}\)$"):
        method_options(MethodConfig(name="mmanet", options={"lambda_mad": 2}), "methods.1", "study.yaml")

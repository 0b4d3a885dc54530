from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data next to the checkout; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


TINY_STUDY = """
name: tiny_adni
seed: 3
output_dir: {out}
data:
  kind: adni
  root: {root}
  volume_shape: [16, 16, 16]
model:
  embed_dim: 16
  trunk_hidden: 16
  volume: {{channels: [4, 8], strides: [2, 2], num_res_units: 1}}
  table: {{hidden: [16]}}
training:
  epochs: 4
  batch_size: 16
  lr: 0.003
  early_stopping: {{monitor: loss, patience: 10, min_epochs: 1}}
  device: cpu
evaluation:
  bootstrap: 30
  scenarios:
    - {{kind: natural}}
    - {{kind: modality_rate, modality: pet, rates: [0.0, 0.5, 1.0]}}
    - {{kind: subset, modalities: [mri, clinical]}}
methods:
  - name: complete_only
  - name: dropout_baseline
"""


@pytest.fixture(scope="session")
def tiny_adni_root(tmp_path_factory) -> Path:
    """A 60-subject synthetic ADNI-format cohort with 16^3 volumes (written once per session)."""
    from robustmm.data.synth.adni import write_synthetic_adni

    root = tmp_path_factory.mktemp("tiny_adni") / "cohort"
    write_synthetic_adni(root, subjects=60, seed=1, native_shape=(16, 16, 16))
    return root


@pytest.fixture
def tiny_study(tiny_adni_root, tmp_path) -> Path:
    """A study file over the tiny cohort whose runs go to tmp_path/runs."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_STUDY.format(root=tiny_adni_root, out=tmp_path / "runs"))
    return path

"""Checkpoint fingerprints: which method and study a checkpoint belongs to, and a hash of its tensors.

Every trainer checkpoint carries ``fingerprint = {method, study, stage, tensors_sha256}``.
``method`` is the method id, ``study`` the sha256 of the study sections that decide training
(:func:`study_hash`), ``tensors_sha256`` the sha256 over the saved network tensors (names, dtypes,
shapes and bytes). On resume the trainer recomputes and compares them: a checkpoint copied over
another method's, taken from another study, or with edited weights is refused with a
:class:`~robustmm.errors.CheckpointError` instead of being reused silently.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import torch

#: the study sections that decide what a training stage computes (evaluation/report do not)
TRAINING_SECTIONS = ("seed", "data", "split", "model", "training", "methods")
VERSION = 1


def study_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 of the training-relevant sections of a resolved study (``to_plain(cfg)``)."""
    part = {k: resolved.get(k) for k in TRAINING_SECTIONS}
    return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()


def tensors_sha256(*states: Mapping[str, Any] | None) -> str:
    """sha256 over the tensors of state dicts, in key order (dtype, shape and raw bytes)."""
    h = hashlib.sha256()
    for k, state in enumerate(states):
        h.update(f"#{k}".encode())
        if state is None:
            continue
        for name in sorted(state):
            value = state[name]
            h.update(name.encode())
            if isinstance(value, torch.Tensor):
                t = value.detach().cpu().contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                if t.numel():
                    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            else:
                h.update(repr(value).encode())
    return h.hexdigest()


def make_fingerprint(expected: Mapping[str, Any], stage: str, module_state: Mapping[str, Any],
                     best_state: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"version": VERSION, **dict(expected), "stage": stage,
            "tensors_sha256": tensors_sha256(module_state, best_state)}


def rerun_advice(where: str) -> str:
    """The end of every :func:`check_fingerprint` refusal of the checkpoint ``where``: how to go on."""
    return (f"delete {where} to train this stage again, or resume with the run folder, study file and --set "
            "options it was written with")


def check_fingerprint(ckpt: Mapping[str, Any], expected: Mapping[str, Any], stage: str, where: str) -> None:
    """Raise CheckpointError unless ``ckpt`` was written for ``expected`` (method, study) and ``stage``
    and its tensors are the ones it was saved with."""
    from robustmm.errors import CheckpointError

    fix = rerun_advice(where)
    fp = ckpt.get("fingerprint") if isinstance(ckpt, Mapping) else None
    if not isinstance(fp, Mapping):
        raise CheckpointError(f"checkpoint {where} has no fingerprint (not written by this robustmm version, or "
                              f"not a robustmm checkpoint), so it cannot be checked; {fix}")
    for key, label in (("method", "method"), ("study", "study (training sections)")):
        if key in expected and fp.get(key) != expected[key]:
            cut = 12 if key == "study" else None  # a hash: its start is enough
            shown = (str(fp.get(key))[:cut], str(expected[key])[:cut])
            raise CheckpointError(f"checkpoint {where} belongs to {label} '{shown[0]}', not '{shown[1]}' of this "
                                  f"run; {fix}")
    if fp.get("stage") != stage:
        raise CheckpointError(f"checkpoint {where} is of training stage '{fp.get('stage')}', not '{stage}'; {fix}")
    actual = tensors_sha256(ckpt.get("module"), ckpt.get("best_state"))
    if fp.get("tensors_sha256") != actual:
        raise CheckpointError(f"checkpoint {where}: its tensors do not match the sha256 saved with them (the weights "
                              f"were changed after saving, or the file is damaged); {fix}")

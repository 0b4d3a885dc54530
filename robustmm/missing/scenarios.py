"""The modality-dropout engine: scenarios turn a batch (and a seed) into availability masks.

Masks are a pure function of (scenario, seed, sample id[, epoch]): a rerun is identical and
every method is evaluated on exactly the same holes. Scenarios only ever *narrow*
``present`` / ``feature_mask``; natural missingness is never undone. Random scenarios never
leave a sample with nothing present; a ``subset`` scenario marks samples that do not naturally
have every modality of the subset as not evaluable (``evaluable``), rather than silently
scoring them on fewer modalities.

Training-time dropout and evaluation use the same classes: training passes ``epoch`` so
every epoch draws fresh masks, evaluation passes ``epoch=None``.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from robustmm.data.batch import Batch, ModalitySpec, all_subsets

_REGISTRY: dict[str, type["Scenario"]] = {}


def sample_rng(*keys: object) -> np.random.Generator:
    """A generator seeded by a stable hash of ``keys`` (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=16).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest, "little")))


@dataclass
class PresenceBatch:
    """The part of a Batch a scenario's ``_present`` / ``evaluable`` read: which modalities each
    subject naturally has, known without loading any input (:func:`presence_batch`)."""

    present: dict[str, Tensor]
    subjects: list[str]

    @property
    def size(self) -> int:
        return len(self.subjects)

    @property
    def modalities(self) -> list[str]:
        return list(self.present)


def presence_batch(data, split: str) -> PresenceBatch:
    """The natural availability of ``split``'s subjects (a data module's ``splits`` / ``dataset``)."""
    idx = np.asarray(data.splits.as_dict()[split], dtype=np.int64)
    ids = data.dataset.subject_ids()
    present = {m: torch.as_tensor(np.asarray(p)[idx].astype(bool)) for m, p in data.dataset.natural_presence().items()}
    return PresenceBatch(present, [ids[i] for i in idx])


def register(kind: str):
    def deco(cls: type["Scenario"]) -> type["Scenario"]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


@dataclass(frozen=True)
class Scenario:
    """Base class. ``group``/``rate`` place a scenario on a curve (e.g. PET missing at 0.4)."""

    kind: ClassVar[str] = "base"
    name: str = ""
    group: str = ""
    rate: float | None = None

    # ---- to implement
    def _present(self, batch: Batch, specs: dict[str, ModalitySpec], seed: int, epoch: int | None) -> dict[str, Tensor]:
        return {m: p.clone() for m, p in batch.present.items()}

    def _feature_mask(self, batch: Batch, present: dict[str, Tensor], specs: dict[str, ModalitySpec],
                      seed: int, epoch: int | None) -> dict[str, Tensor]:
        return {m: v.clone() for m, v in batch.feature_mask.items()}

    def evaluable(self, batch: Batch) -> Tensor:
        return torch.ones(batch.size, dtype=torch.bool)

    def changes_nothing(self) -> bool:
        """True when applying the scenario returns every sample as it is (natural data, a rate of 0)."""
        return False

    def check_specs(self, specs: dict[str, ModalitySpec]) -> None:
        """Raise ValueError when the scenario cannot act on data of these modality kinds (a
        feature-level scenario on volumes would otherwise change nothing, or fail mid-run)."""

    # ---- shared
    def apply(self, batch: Batch, specs: dict[str, ModalitySpec], seed: int, epoch: int | None = None) -> Batch:
        present = self._present(batch, specs, seed, epoch)
        for m in present:  # never undo natural missingness
            present[m] &= batch.present[m].to(present[m].device)
        mask = self._feature_mask(batch, present, specs, seed, epoch)
        for m, v in mask.items():
            v &= batch.feature_mask[m].to(v.device)
            v &= present[m].view(-1, *([1] * (v.dim() - 1)))
        return batch.with_masks(present, mask)

    def _key(self, seed: int, subject: str, epoch: int | None, *extra: object) -> tuple:
        return (self.kind, seed, subject, epoch, *extra)


@register("natural")
@dataclass(frozen=True)
class Natural(Scenario):
    """The data as they are (natural missingness only)."""

    def changes_nothing(self) -> bool:
        return True


@register("subset")
@dataclass(frozen=True)
class Subset(Scenario):
    """Exactly the modalities of ``modalities``; evaluable only where all of them are present."""

    modalities: tuple[str, ...] = ()

    def _present(self, batch, specs, seed, epoch):
        _check_known(self.modalities, batch)
        return {m: p.clone() & (m in self.modalities) for m, p in batch.present.items()}

    def evaluable(self, batch: Batch) -> Tensor:
        ok = torch.ones(batch.size, dtype=torch.bool)
        for m in self.modalities:
            ok &= batch.present[m].cpu()
        return ok


@register("modality_rate")
@dataclass(frozen=True)
class ModalityRate(Scenario):
    """Drop ``modality`` for a fraction ``rate`` of samples.

    Each subject draws one uniform number u (independent of the rate) and loses the modality
    when u < rate, so the dropped sets are nested across a rate grid (a subject missing PET at
    0.4 also misses it at 0.6). The modality is kept if it is the only one present.
    """

    modality: str = ""
    rate_value: float = 0.0

    def changes_nothing(self) -> bool:
        return self.rate_value == 0.0

    def _present(self, batch, specs, seed, epoch):
        _check_known([self.modality], batch)
        present = {m: p.clone() for m, p in batch.present.items()}
        others = torch.zeros(batch.size, dtype=torch.bool)
        for m, p in batch.present.items():
            if m != self.modality:
                others |= p.cpu()
        for i, subject in enumerate(batch.subjects):
            u = sample_rng(*self._key(seed, subject, epoch, self.modality)).random()
            if u < self.rate_value and others[i]:
                present[self.modality][i] = False
        return present


@register("random_subsets")
@dataclass(frozen=True)
class RandomSubsets(Scenario):
    """Per sample, a uniformly drawn non-empty subset of its naturally present modalities."""

    def _present(self, batch, specs, seed, epoch):
        mods = batch.modalities
        present = {m: torch.zeros_like(batch.present[m]) for m in mods}
        for i, subject in enumerate(batch.subjects):
            available = [m for m in mods if bool(batch.present[m][i])]
            if not available:
                continue
            choices = all_subsets(available)
            pick = choices[int(sample_rng(*self._key(seed, subject, epoch)).integers(len(choices)))]
            for m in pick:
                present[m][i] = True
        return present


@register("random_modality")
@dataclass(frozen=True)
class RandomModality(Scenario):
    """Each modality of each sample dropped independently with probability ``rate_value``;
    if that would leave nothing, one randomly chosen available modality is kept."""

    rate_value: float = 0.0

    def changes_nothing(self) -> bool:
        return self.rate_value == 0.0

    def _present(self, batch, specs, seed, epoch):
        mods = batch.modalities
        present = {m: p.clone() for m, p in batch.present.items()}
        for i, subject in enumerate(batch.subjects):
            rng = sample_rng(*self._key(seed, subject, epoch))
            u = rng.random(len(mods))
            available = [m for m in mods if bool(batch.present[m][i])]
            for m, ui in zip(mods, u):
                if ui < self.rate_value:
                    present[m][i] = False
            if available and not any(bool(present[m][i]) for m in mods):
                present[available[int(rng.integers(len(available)))]][i] = True
        return present


def _droppable(spec: ModalitySpec, valid: Tensor, ids: Tensor | None) -> Tensor:
    """Positions that may be dropped: real positions, minus special tokens for token ids.

    A sequence modality with ``special_ids`` holds features of tokenised text (BERT features
    of [CLS] w_1 ... w_n [SEP]): its first and last real positions are those special tokens
    and are kept as well.
    """
    ok = valid.clone()
    if spec.kind == "tokens" and ids is not None and spec.special_ids:
        for sid in spec.special_ids:
            ok &= ids != sid
    elif spec.kind == "sequence" and spec.special_ids:
        real = valid.nonzero(as_tuple=True)[0]
        if real.numel():
            ok[real[0]] = False
            ok[real[-1]] = False
    return ok


@register("rmfm")
@dataclass(frozen=True)
class RMFM(Scenario):
    """Random modality feature missing (see docs/protocols/rmfm.md).

    Every droppable position (time step, token, table column, bag item) of every selected
    modality is dropped independently with probability p (``modality_rates`` per modality,
    else ``rate_value``). ``training=True`` draws a per-position rate r ~ U(0, 1) and drops when
    u <= r. ``shared_mask`` uses one time mask for all modalities (aligned sequences).
    [CLS]/[SEP] and padding are never touched.
    """

    rate_value: float = 0.0
    modality_rates: tuple[tuple[str, float], ...] = ()
    modalities: tuple[str, ...] = ()
    shared_mask: bool = False
    training: bool = False

    def changes_nothing(self) -> bool:
        return not self.training and self.rate_value == 0.0 and all(r == 0.0 for _, r in self.modality_rates)

    def _rate_for(self, m: str) -> float:
        return dict(self.modality_rates).get(m, self.rate_value)

    def check_specs(self, specs: dict[str, ModalitySpec]) -> None:
        self._selected(specs)

    def _selected(self, specs: dict[str, ModalitySpec]) -> list[str]:
        mods = list(self.modalities) or [m for m in specs if specs[m].has_positions]
        if not mods:
            raise ValueError(f"rmfm: no modality of these data has positions to drop (time steps, tokens, table "
                             f"columns or bag items; kinds: {({m: v.kind for m, v in specs.items()})}); use "
                             "modality_rate or subset scenarios for them")
        bad = [m for m in mods if m in specs and not specs[m].has_positions]
        if bad:
            raise ValueError(f"rmfm: modalities {bad} have no positions to drop (kinds: "
                             f"{[specs[m].kind for m in bad]}); use modality_rate or subset for them")
        return mods

    def _feature_mask(self, batch, present, specs, seed, epoch):
        mask = {m: v.clone() for m, v in batch.feature_mask.items()}
        mods = self._selected({m: specs[m] for m in batch.modalities})
        _check_known(mods, batch)
        for i, subject in enumerate(batch.subjects):
            shared_u = None
            for m in mods:
                spec = specs[m]
                n = mask[m].shape[1]
                key = self._key(seed, subject, epoch) if self.shared_mask else self._key(seed, subject, epoch, m)
                rng = sample_rng(*key)
                u = rng.random(n)
                if self.shared_mask:
                    shared_u = u if shared_u is None else shared_u
                    u = shared_u[:n]
                p = rng.random(n) if self.training else np.full(n, self._rate_for(m))
                drop = torch.from_numpy((u <= p) if self.training else (u < p))
                ids = batch.inputs[m][i] if spec.kind == "tokens" else None
                drop &= _droppable(spec, batch.valid[m][i].cpu(), ids.cpu() if ids is not None else None)
                mask[m][i] &= ~drop.to(mask[m].device)
        return mask


@register("temporal_block")
@dataclass(frozen=True)
class TemporalBlock(Scenario):
    """One contiguous block of round((len - 2) * p) positions shared by all selected
    sequence/token modalities (aligned data); the first and last real positions are kept."""

    rate_value: float = 0.0
    modalities: tuple[str, ...] = ()

    def changes_nothing(self) -> bool:
        return self.rate_value == 0.0

    def check_specs(self, specs: dict[str, ModalitySpec]) -> None:
        self._selected(specs)

    def _selected(self, specs: dict[str, ModalitySpec]) -> list[str]:
        mods = list(self.modalities) or [m for m in specs if specs[m].kind in ("sequence", "tokens")]
        bad = [m for m in mods if m in specs and specs[m].kind not in ("sequence", "tokens")]
        if not mods or bad:
            raise ValueError(f"temporal_block drops time steps of sequences or tokens, and "
                             f"{'these data have none' if not mods else f'{bad} are not sequences or tokens'} "
                             f"(kinds: {({m: v.kind for m, v in specs.items()})}); use rmfm for table columns, "
                             "modality_rate or subset scenarios for volumes")
        return mods

    def _feature_mask(self, batch, present, specs, seed, epoch):
        mask = {m: v.clone() for m, v in batch.feature_mask.items()}
        mods = self._selected({m: specs[m] for m in batch.modalities})
        _check_known(mods, batch)
        for i, subject in enumerate(batch.subjects):
            length = int(min(batch.valid[m][i].sum() for m in mods))
            block = int(round((length - 2) * self.rate_value))
            if block <= 0:
                continue
            start = 1 + int(sample_rng(*self._key(seed, subject, epoch)).integers(0, length - 1 - block))
            for m in mods:
                real = batch.valid[m][i].nonzero(as_tuple=True)[0]
                mask[m][i, real[start:start + block]] = False
        return mask


def _check_known(mods, batch: Batch) -> None:
    unknown = [m for m in mods if m not in batch.present]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; this dataset has {batch.modalities}")


# --------------------------------------------------------------------------- from config
def _rates(cfg) -> list[float]:
    rates = list(cfg.rates) if getattr(cfg, "rates", None) is not None else [getattr(cfg, "rate", None)]
    for r in rates:
        if r is None:
            raise ValueError(f"scenario kind '{cfg.kind}' needs 'rate' or 'rates'")
        if not 0.0 <= float(r) <= 1.0:  # also catches NaN
            raise ValueError(f"scenario kind '{cfg.kind}': rate {r} is outside [0, 1]")
    return rates


def _fmt(rate: float) -> str:
    return f"{rate:g}"


def _parse_config(cfg: Mapping, index: int):
    """A scenario config given as a mapping, validated as a study's ``evaluation.scenarios`` entry."""
    from pydantic import TypeAdapter, ValidationError

    from robustmm.config.schema import ScenarioConfig

    try:
        return TypeAdapter(ScenarioConfig).validate_python(cfg)
    except ValidationError as err:  # the first part of each location is the kind, which the message names
        problems = "; ".join((".".join(map(str, e["loc"][1:])) + ": " if len(e["loc"]) > 1 else "") + e["msg"]
                             for e in err.errors())
        raise ValueError(f"scenario {index} {dict(cfg)}: {problems}") from None


def build_scenarios(configs: list, modalities: list[str] | dict[str, ModalitySpec]) -> list[Scenario]:
    """Expand scenario configs (rate grids, all_subsets) into concrete scenarios. A config is a
    study's ``evaluation.scenarios`` entry, parsed or as a mapping, e.g. ``{"kind": "modality_rate",
    "modality": "pet", "rates": [0, 0.5, 1]}``. With the data's modality specs (a dict) instead of
    only their names, each scenario is also checked against the modality kinds
    (:meth:`Scenario.check_specs`)."""
    configs = [_parse_config(cfg, i) if isinstance(cfg, Mapping) else cfg for i, cfg in enumerate(configs)]
    specs = modalities if isinstance(modalities, dict) else None
    modalities = list(modalities)
    unknown_mods = []
    out: list[Scenario] = []
    for cfg in configs:
        kind = cfg.kind
        if kind == "natural":
            out.append(Natural(name=cfg.name or "natural", group=cfg.name or "natural"))
        elif kind == "subset":
            unknown_mods += [m for m in cfg.modalities if m not in modalities]
            mods = tuple(m for m in modalities if m in cfg.modalities)
            out.append(Subset(name=cfg.name or "+".join(mods), group="subsets", modalities=mods))
        elif kind == "all_subsets":
            for mods in all_subsets(modalities):
                out.append(Subset(name="+".join(mods), group=cfg.name or "subsets", modalities=mods))
        elif kind == "modality_rate":
            unknown_mods += [cfg.modality] if cfg.modality not in modalities else []
            group = cfg.name or f"{cfg.modality}_missing"
            for r in _rates(cfg):
                out.append(ModalityRate(name=f"{group}@{_fmt(r)}", group=group, rate=r, modality=cfg.modality, rate_value=r))
        elif kind == "random_subsets":
            out.append(RandomSubsets(name=cfg.name or "random_subsets", group=cfg.name or "random_subsets"))
        elif kind == "random_modality":
            group = cfg.name or "random_modality"
            for r in _rates(cfg):
                out.append(RandomModality(name=f"{group}@{_fmt(r)}", group=group, rate=r, rate_value=r))
        elif kind == "rmfm":
            group = cfg.name or "rmfm"
            mods = tuple(cfg.modalities or ())
            unknown_mods += [m for m in mods if m not in modalities]
            per_mod = tuple(sorted((cfg.modality_rates or {}).items()))
            unknown_mods += [m for m, _ in per_mod if m not in modalities]
            for r in _rates(cfg) if not cfg.training else [None]:
                name = group if r is None else f"{group}@{_fmt(r)}"
                out.append(RMFM(name=name, group=group, rate=r, rate_value=r or 0.0, modality_rates=per_mod,
                                modalities=mods, shared_mask=cfg.shared_mask, training=cfg.training))
        elif kind == "temporal_block":
            group = cfg.name or "temporal_block"
            unknown_mods += [m for m in cfg.modalities or () if m not in modalities]
            for r in _rates(cfg):
                out.append(TemporalBlock(name=f"{group}@{_fmt(r)}", group=group, rate=r, rate_value=r,
                                         modalities=tuple(cfg.modalities or ())))
        else:  # pragma: no cover - the schema rejects other kinds
            raise ValueError(f"unknown scenario kind {kind!r}")
    if unknown_mods:
        close = {m: difflib.get_close_matches(m, modalities, n=1) for m in sorted(set(unknown_mods))}
        hints = [f"'{hint[0]}' for '{m}'" for m, hint in close.items() if hint]
        raise ValueError(f"scenarios name modalities {sorted(set(unknown_mods))} that the data do not have "
                         f"(modalities: {modalities})" + (f"; did you mean {', '.join(hints)}?" if hints else ""))
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"scenario names must be unique; give 'name:' to tell apart {dupes}")
    for scenario in out if specs is not None else []:
        scenario.check_specs(specs)
    return out


def build_scenario(cfg, modalities: list[str] | dict[str, ModalitySpec]) -> Scenario:
    """One scenario (training-time dropout): a config that expands to exactly one."""
    built = build_scenarios([cfg], modalities)
    if len(built) != 1:
        raise ValueError(f"a training dropout scenario must be a single scenario, got {len(built)} "
                         "(give 'rate', not 'rates')")
    return built[0]

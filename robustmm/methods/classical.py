"""``classical``: the model a statistician would fit — penalized Cox, regularised logistic
regression or ridge on a few features per modality — evaluated like every other method.

Features (:class:`ModalityFeatures`), all statistics from the *training* rows only:

* ``table``: the columns as they are; a column missing for a sample (``feature_mask`` False,
  e.g. under RMFM) gets the column's training mean. Tables with more than ``max_columns``
  columns (omics) are standardized and reduced to ``components`` principal components.
* ``volume`` / ``image``: average-pooled until at most ``voxels`` values remain (same factor on
  every axis), flattened, standardized, then ``components`` principal components.
* ``sequence`` / ``bag``: the mean over observed time steps / items (mean-pooled frames), then
  PCA to ``components`` when wider than ``max_columns``.
* ``tokens``: counts of the token ids (specials and padding left out) hashed into ``voxels``
  buckets, then ``components`` truncated-SVD components.

PCA / SVD are fitted on the training rows where the modality is present. A modality that is
absent (naturally or by a scenario) is filled with its training mean (``fill: mean``) and, with
``fill: mean+indicator``, also flagged by a 0/1 column. All features are then standardized
(training statistics) and fed to

* survival: scikit-survival's elastic-net Cox model (``CoxnetSurvivalAnalysis``); the penalty
  (and the l1 ratio, among ``l1_ratios``) maximizes the mean C-index over ``inner_folds``
  folds *of the training split*;
* binary / multiclass: scikit-learn's ``LogisticRegressionCV`` (L2; C by inner CV on the
  training split; ROC AUC for two classes, log-loss otherwise);
* regression: scikit-learn's ``RidgeCV`` (alpha by inner CV on the training split).

The validation and test splits are never read while fitting. Segmentation is refused.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Annotated, Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from robustmm.data.batch import Batch, ModalitySpec
from robustmm.errors import ConfigError, DataError
from robustmm.methods.base import Method, MethodContext, MethodOptions, register_method
from robustmm.methods.task import task_adapter

log = logging.getLogger("robustmm")

#: task kinds (or adapters) that are not per-sample predictions a linear model can make
REFUSED_TASKS = ("segmentation",)


class ClassicalOptions(MethodOptions):
    components: int = Field(8, ge=1, description="principal components per reduced modality")
    max_columns: int = Field(32, ge=1, description="tables / pooled sequences wider than this are reduced by PCA")
    voxels: int = Field(4096, ge=8, description="volumes/images are average-pooled to at most this many values")
    fill: Literal["mean", "mean+indicator"] = "mean"
    inner_folds: int = Field(5, ge=2, description="inner cross-validation folds on the training split")
    penalties: int = Field(20, ge=2, description="size of the penalty grid searched by the inner CV")
    l1_ratios: list[Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: [0.1, 0.5, 1.0], min_length=1,
                                   description="survival: elastic-net mixing values tried by the inner CV")
    modalities: list[str] | None = Field(None, description="use only these modalities (default: all)")


def refuse_task(method: str, task: Any, method_id: str) -> None:
    kind = getattr(task, "adapter", "") or task.kind
    if task.kind in REFUSED_TASKS or kind in REFUSED_TASKS:
        raise ConfigError(f"method '{method_id}' ({method}) does not support {task.kind} studies: it "
                          f"fits one linear model per sample prediction, not a voxel-wise label map. Remove it from "
                          f"the study's methods (segmentation studies can use dropout_baseline, mmanet, ...)")


# ---------------------------------------------------------------------------------- features
def _pool_shape(shape: Sequence[int], budget: int) -> tuple[int, ...]:
    """Spatial output size of an average pool with one integer factor on every axis such that
    channels * prod(size) <= budget."""
    channels, spatial = int(shape[0]), [int(s) for s in shape[1:]]
    factor = 1
    while channels * int(np.prod([max(1, s // factor) for s in spatial])) > budget and factor < max(spatial):
        factor += 1
    return tuple(max(1, s // factor) for s in spatial)


def raw_features(spec: ModalitySpec, batch: Batch, voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (B, D), observed (B, D) bool) of one modality, before imputation and reduction."""
    name = spec.name
    x = batch.inputs[name].detach().cpu()
    present = batch.present[name].detach().cpu().bool()
    fmask = batch.feature_mask.get(name)
    fmask = None if fmask is None else fmask.detach().cpu().bool()
    b = x.shape[0]
    if spec.kind == "table":
        values = x.float().reshape(b, -1)
        observed = present[:, None].expand_as(values).clone()
        if fmask is not None:
            observed &= fmask.reshape(b, -1)
        values = torch.nan_to_num(values)
    elif spec.kind in ("volume", "image"):
        size = _pool_shape(spec.shape, voxels)
        pool = F.adaptive_avg_pool3d if spec.kind == "volume" else F.adaptive_avg_pool2d
        values = pool(x.float(), size).reshape(b, -1)
        observed = present[:, None].expand_as(values).clone()
    elif spec.kind in ("sequence", "bag"):
        steps = fmask if fmask is not None else present[:, None].expand(b, x.shape[1])
        steps = steps & present[:, None]
        w = steps.float()
        count = w.sum(1, keepdim=True)
        values = (x.float() * w[..., None]).sum(1) / count.clamp(min=1)
        observed = (count > 0).expand_as(values).clone()
    elif spec.kind == "tokens":
        ids = x.long()
        keep = fmask if fmask is not None else torch.ones_like(ids, dtype=torch.bool)
        keep = keep & present[:, None]
        for special in (*spec.special_ids, spec.pad_id, spec.unk_id):
            if special is not None:
                keep &= ids != int(special)
        buckets = ids.remainder(voxels)
        values = torch.zeros(b, voxels)
        values.scatter_add_(1, buckets, keep.float())
        count = values.sum(1, keepdim=True)
        values = values / count.clamp(min=1)
        observed = (count > 0).expand_as(values).clone()
    else:
        raise DataError(f"modality '{name}': kind {spec.kind!r} has no classical reduction")
    return values.numpy().astype(np.float64), observed.numpy()


class ModalityFeatures:
    """Imputation + optional reduction of one modality, fitted on training rows."""

    def __init__(self, spec: ModalitySpec, options: ClassicalOptions, seed: int) -> None:
        self.spec = spec
        self.options = options
        self.seed = seed
        self.mean: np.ndarray | None = None
        self.reducer: Any = None
        self.scale: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def reduced(self) -> bool:
        return self.reducer is not None

    def fit(self, values: np.ndarray, observed: np.ndarray) -> "ModalityFeatures":
        counts = observed.sum(0)
        if not (observed.any(1)).any():
            raise DataError(f"modality '{self.spec.name}' is absent for every training subject; the classical "
                            f"method cannot learn from it: drop it with the method option 'modalities'")
        sums = np.where(observed, values, 0.0).sum(0)
        overall = float(sums.sum() / max(counts.sum(), 1))
        self.mean = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        filled = np.where(observed, values, self.mean)
        rows = observed.any(1)
        width = values.shape[1]
        reduce = self.spec.kind in ("volume", "image", "tokens") or width > self.options.max_columns
        if reduce:
            k = int(min(self.options.components, rows.sum() - 1, width))
            if k >= 1:
                if self.spec.kind == "tokens":
                    from sklearn.decomposition import TruncatedSVD

                    self.reducer = TruncatedSVD(n_components=min(k, width - 1) or 1, random_state=self.seed)
                    self.reducer.fit(filled[rows])
                else:
                    from sklearn.decomposition import PCA

                    sd = filled[rows].std(0)
                    self.scale = (filled[rows].mean(0), np.where(sd > 1e-12, sd, 1.0))
                    self.reducer = PCA(n_components=k, svd_solver="randomized" if width > 500 else "full",
                                       random_state=self.seed)
                    self.reducer.fit((filled[rows] - self.scale[0]) / self.scale[1])
        return self

    def transform(self, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        filled = np.where(observed, values, self.mean)
        if self.reducer is None:
            return filled
        if self.scale is not None:
            filled = (filled - self.scale[0]) / self.scale[1]
        return self.reducer.transform(filled)

    def names(self) -> list[str]:
        n = self.reducer.n_components if self.reduced else len(self.mean)
        prefix = "pc" if self.reduced else "col"
        return [f"{self.spec.name}:{prefix}{i}" for i in range(n)]


# ---------------------------------------------------------------------------------- the model
class ClassicalModel:
    """Features + one penalized linear model for a fixed set of modalities (also the base of
    ``pattern_ensemble``)."""

    def __init__(self, modalities: dict[str, ModalitySpec], task, options: ClassicalOptions, seed: int) -> None:
        self.modalities = modalities
        self.task = task          # a TaskAdapter, fitted on the training split
        self.options = options
        self.seed = seed
        self.features: dict[str, ModalityFeatures] = {}
        self.center: np.ndarray | None = None
        self.spread: np.ndarray | None = None
        self.estimator: Any = None
        self.selection: dict[str, Any] = {}
        self.train_subjects: list[str] = []

    # ------------------------------------------------------------ design matrix
    def _raw(self, batch: Batch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {m: raw_features(spec, batch, self.options.voxels) for m, spec in self.modalities.items()}

    def _design(self, raw: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        cols = []
        for m, feats in self.features.items():
            values, observed = raw[m]
            cols.append(feats.transform(values, observed))
            if self.options.fill == "mean+indicator":
                cols.append((~observed.any(1)).astype(np.float64)[:, None])
        return np.concatenate(cols, axis=1)

    def feature_names(self) -> list[str]:
        names = []
        for m, feats in self.features.items():
            names += feats.names()
            if self.options.fill == "mean+indicator":
                names.append(f"{m}:absent")
        return names

    # ------------------------------------------------------------ fitting
    def fit_batches(self, batches) -> "ClassicalModel":
        """Fit on an iterable of training batches (the training split only)."""
        raws: dict[str, list] = {m: [] for m in self.modalities}
        targets, subjects = [], []
        for batch in batches:
            for m, r in self._raw(batch).items():
                raws[m].append(r)
            targets.append(batch.target)
            subjects.extend(batch.subjects)
        if not subjects:
            raise DataError("the classical model got no training subjects")
        raw = {m: (np.concatenate([r[0] for r in rs]), np.concatenate([r[1] for r in rs])) for m, rs in raws.items()}
        self.train_subjects = subjects
        for m, spec in self.modalities.items():
            self.features[m] = ModalityFeatures(spec, self.options, self.seed).fit(*raw[m])
        x = self._design(raw)
        self.center = x.mean(0)
        sd = x.std(0)
        self.spread = np.where(sd > 1e-12, sd, 1.0)
        x = (x - self.center) / self.spread
        t0 = time.time()
        kind = self.task.task.kind
        if kind == "survival":
            time_ = np.concatenate([t["time"].numpy() for t in targets]).astype(float)
            event = np.concatenate([t["event"].numpy() for t in targets]).astype(float)
            self._fit_cox(x, time_, event)
        elif kind in ("binary", "multiclass"):
            y = np.concatenate([t.numpy() for t in targets]).astype(int)
            self._fit_logistic(x, y)
        elif kind == "regression":
            y = np.concatenate([t.numpy() for t in targets]).astype(float)
            self._fit_ridge(x, y)
        else:
            raise ConfigError(f"the classical model has no estimator for task kind {kind!r}")
        self.selection["seconds"] = round(time.time() - t0, 3)
        self.selection["features"] = int(x.shape[1])
        self.selection["training_subjects"] = int(x.shape[0])
        return self

    def _fit_cox(self, x: np.ndarray, time_: np.ndarray, event: np.ndarray) -> None:
        from sklearn.model_selection import StratifiedKFold
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv

        from robustmm.metrics.survival import concordance

        if event.sum() < 2:
            raise DataError(f"the classical Cox model needs deaths in the training split; found {int(event.sum())}")
        y = Surv.from_arrays(event > 0.5, time_)
        folds = min(self.options.inner_folds, int(event.sum()), int((event < 0.5).sum()) or self.options.inner_folds)
        folds = max(folds, 2)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        best = (-np.inf, None, None)
        grid: dict[str, list[float]] = {}
        for l1 in self.options.l1_ratios:
            path = self._coxnet(l1, None).fit(x, y).alphas_
            scores = np.full((folds, len(path)), np.nan)
            for f, (tr, te) in enumerate(splitter.split(x, event > 0.5)):
                try:
                    model = self._coxnet(l1, path).fit(x[tr], y[tr])
                except (ArithmeticError, ValueError):
                    continue
                for j, a in enumerate(model.alphas_):
                    scores[f, j] = concordance(time_[te], event[te], model.predict(x[te], alpha=a))
            mean = np.nanmean(scores, axis=0) if np.isfinite(scores).any() else np.full(len(path), np.nan)
            grid[str(l1)] = [None if not np.isfinite(v) else round(float(v), 4) for v in mean]
            if np.isfinite(mean).any():
                j = int(np.nanargmax(mean))
                if mean[j] > best[0]:
                    best = (float(mean[j]), l1, float(path[j]))
        if best[1] is None:
            raise DataError("the classical Cox model could not be fitted in any inner fold (numerical failure); "
                            "try fewer components or a larger l1 ratio")
        _, l1, alpha = best
        self.estimator = CoxnetSurvivalAnalysis(l1_ratio=l1, alphas=[alpha], fit_baseline_model=True,
                                                max_iter=100000).fit(x, y)
        self.selection.update({"model": "elastic-net Cox (scikit-survival CoxnetSurvivalAnalysis)",
                               "l1_ratio": l1, "alpha": alpha, "inner_cv_c_index": round(best[0], 4),
                               "inner_folds": folds,
                               "nonzero_coefficients": int(np.count_nonzero(self.estimator.coef_[:, -1]))})

    def _coxnet(self, l1: float, alphas):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        kw = {"alphas": alphas} if alphas is not None else {"n_alphas": self.options.penalties,
                                                             "alpha_min_ratio": 0.01}
        return CoxnetSurvivalAnalysis(l1_ratio=l1, max_iter=100000, **kw)

    def _fit_logistic(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold

        counts = np.bincount(y, minlength=self.task.task.num_classes)
        present = counts[counts > 0]
        if present.size < 2:
            raise DataError(f"the classical logistic model needs two classes in the training split; counts {counts.tolist()}")
        folds = max(2, min(self.options.inner_folds, int(present.min())))
        self.estimator = LogisticRegressionCV(Cs=self.options.penalties, cv=StratifiedKFold(folds, shuffle=True,
                                                                                        random_state=self.seed),
                                              scoring="neg_log_loss", max_iter=5000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.estimator.fit(x, y)
        self.selection.update({"model": "L2 logistic regression (scikit-learn LogisticRegressionCV)",
                               "C": float(np.ravel(self.estimator.C_)[0]), "inner_folds": folds})

    def _fit_ridge(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import RidgeCV
        from sklearn.model_selection import KFold

        folds = max(2, min(self.options.inner_folds, len(y)))
        self.estimator = RidgeCV(alphas=np.logspace(-3, 4, self.options.penalties),
                                 cv=KFold(folds, shuffle=True, random_state=self.seed)).fit(x, y)
        self.selection.update({"model": "ridge regression (scikit-learn RidgeCV)", "alpha": float(self.estimator.alpha_),
                               "inner_folds": folds})

    # ------------------------------------------------------------ prediction
    def design(self, batch: Batch) -> np.ndarray:
        return (self._design(self._raw(batch)) - self.center) / self.spread

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        if self.estimator is None:
            raise RuntimeError("classical model: call fit() before predict()")
        x = self.design(batch)
        task = self.task
        kind = task.task.kind
        if kind == "survival":
            lp = self.estimator.predict(x)
            if task.cox:
                out = task.outputs(torch.as_tensor(lp, dtype=torch.float32)[:, None])
            else:
                out = task.outputs(torch.as_tensor(self._hazard_logits(x), dtype=torch.float32))
            out["risk"] = torch.as_tensor(lp, dtype=torch.float32)
            return out
        if kind in ("binary", "multiclass"):
            proba = np.full((len(x), task.task.num_classes), 1e-12)
            proba[:, self.estimator.classes_] = np.clip(self.estimator.predict_proba(x), 1e-12, 1.0)
            return task.outputs(torch.as_tensor(np.log(proba), dtype=torch.float32))
        pred = self.estimator.predict(x)
        return task.outputs(torch.as_tensor(pred, dtype=torch.float32)[:, None])

    def _hazard_logits(self, x: np.ndarray) -> np.ndarray:
        """Discrete hazards of the study's K time bins from the Cox survival function, so the
        survival curve the task reads (``S_k`` at the upper edge of bin k) is the model's."""
        cuts = self.task.cuts
        inner = np.asarray(cuts, float)[1:-1]
        last = max(float(self.task.train_time.max()), float(inner[-1]) if inner.size else 0.0)
        edges = np.concatenate([inner, [last]])
        fns = self.estimator.predict_survival_function(x)
        lo, hi = fns[0].domain if hasattr(fns[0], "domain") else (fns[0].x[0], fns[0].x[-1])
        surv = np.stack([fn(np.clip(edges, lo, hi)) for fn in fns])
        surv = np.where(edges[None, :] < lo, 1.0, surv)  # before the first training time: nobody has died
        surv = np.clip(surv, 1e-6, 1.0)
        prev = np.concatenate([np.ones((len(x), 1)), surv[:, :-1]], axis=1)
        hazard = np.clip(1.0 - surv / prev, 1e-6, 1 - 1e-6)
        return np.log(hazard) - np.log1p(-hazard)

    def report(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "feature_names": self.feature_names(), **self.selection}


def train_batches(data, indices: np.ndarray | None = None, batch_size: int = 256):
    """Batches of the training split (or of ``indices``, a subset of it)."""
    return data.loader("train", shuffle=False, batch_size=batch_size, indices=indices)


@register_method("classical")
class Classical(Method):
    """Penalized Cox / logistic / ridge on per-modality features (see the module docstring)."""

    Options = ClassicalOptions

    def __init__(self, options: ClassicalOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        chosen = options.modalities or list(context.modalities)
        self.task = task_adapter(context.task)
        self.model = ClassicalModel({m: context.modalities[m] for m in chosen}, self.task, options, context.seed)
        self.seconds = 0.0

    @classmethod
    def check_setup(cls, options: ClassicalOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        """Not a segmentation task, and option modalities names only the data's modalities."""
        refuse_task("classical", task, method_id)
        unknown = [m for m in options.modalities or () if m not in specs]
        if unknown:
            raise ConfigError(f"method '{method_id}': option modalities names {unknown}, not modalities of the data "
                              f"{list(specs)}")

    def fit(self, data, trainer) -> None:
        t0 = time.time()
        self.task.fit(data)
        self.model.fit_batches(train_batches(data))
        self.seconds = round(time.time() - t0, 2)
        log.info("classical: %s", {k: v for k, v in self.model.report().items() if k != "feature_names"})

    @torch.no_grad()
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        out = self.model.predict(batch)
        device = next(iter(batch.present.values())).device
        return {k: v.to(device) for k, v in out.items()}

    def report_items(self) -> dict[str, Any]:
        items = self.model.report()
        names = items.pop("feature_names")
        per_modality = {m: sum(n.startswith(f"{m}:") for n in names) for m in self.model.modalities}
        return {**items, "features_per_modality": per_modality, "training_seconds": self.seconds}

    def state_dict(self) -> dict[str, Any]:
        # scikit-learn estimators are kept as objects (in memory; never written with pickle)
        return {"model": self.model, "task": self.task.state_dict(), "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model = state["model"]
        self.task.load_state_dict(state["task"])
        self.model.task = self.task
        self.seconds = state.get("seconds", 0.0)

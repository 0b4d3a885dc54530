"""robustmm: multimodal models that keep working when modalities are missing."""

__version__ = "0.1.0"

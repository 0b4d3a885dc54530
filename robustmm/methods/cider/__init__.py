"""CIDer: robust multimodal emotion recognition under missing modality features (MSSD) and
language/label bias (MCM, MACI); see docs/protocols/cider.md. Importing the package registers
``method: cider``."""

from robustmm.methods.cider.method import CIDer, CIDerOptions

__all__ = ["CIDer", "CIDerOptions"]

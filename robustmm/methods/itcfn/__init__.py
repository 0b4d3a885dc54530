"""ITCFN: missing-PET generation from MRI (MMG) and the triple-modal co-attention classifier."""

from robustmm.methods.itcfn.generator import PetGenerator, generation_quality, image_metrics
from robustmm.methods.itcfn.method import ITCFN, ITCFNOptions

__all__ = ["ITCFN", "ITCFNOptions", "PetGenerator", "generation_quality", "image_metrics"]

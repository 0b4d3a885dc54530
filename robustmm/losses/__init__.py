"""Loss functions: distillation, classification, alignment and survival."""

from robustmm.losses.alignment import sdm_loss
from robustmm.losses.classification import class_weighted_focal_loss, focal_loss
from robustmm.losses.distillation import (
    attention_kl_loss,
    cosine_distill_loss,
    kd_kl_loss,
    mad_loss,
    mad_loss_spatial,
)
from robustmm.losses.survival import (
    cox_ph_loss,
    discrete_survival_nll,
    survival_curve,
    survival_risk,
)

__all__ = [
    "attention_kl_loss",
    "class_weighted_focal_loss",
    "cosine_distill_loss",
    "cox_ph_loss",
    "discrete_survival_nll",
    "focal_loss",
    "kd_kl_loss",
    "mad_loss",
    "mad_loss_spatial",
    "sdm_loss",
    "survival_curve",
    "survival_risk",
]

"""The modality-dropout engine (scenarios -> availability masks)."""

from robustmm.missing.scenarios import (
    RMFM,
    ModalityRate,
    Natural,
    RandomModality,
    RandomSubsets,
    Scenario,
    Subset,
    TemporalBlock,
    build_scenario,
    build_scenarios,
    sample_rng,
)

__all__ = ["RMFM", "ModalityRate", "Natural", "RandomModality", "RandomSubsets", "Scenario", "Subset",
           "TemporalBlock", "build_scenario", "build_scenarios", "sample_rng"]

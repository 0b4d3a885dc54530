"""Study configuration: typed schema and the YAML loader."""

from robustmm.config.loader import load_study, to_plain, validate
from robustmm.config.schema import StudyConfig

__all__ = ["StudyConfig", "load_study", "to_plain", "validate"]

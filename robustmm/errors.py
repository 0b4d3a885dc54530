"""User-facing errors.

Every error a user can cause (bad YAML key, missing file, corrupt volume, NaN in a table, ...)
raises a subclass of :class:`RobustMMError`. Its message says what was wrong, where (file, key
path, subject id) and how to fix it; the CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations


class RobustMMError(Exception):
    """Base class for errors caused by user input or user environment."""


class ConfigError(RobustMMError):
    """A study file or override is invalid (unknown key, wrong type, missing key)."""


class DataError(RobustMMError):
    """Input data are missing, corrupt or inconsistent (names the file and subject)."""


class RunDirectoryError(RobustMMError):
    """A run directory cannot be created or resumed (it exists, or does not match)."""


class TrainingError(RobustMMError):
    """Training cannot go on (a non-finite loss, a metric that is not there)."""


class CheckpointError(RobustMMError):
    """A checkpoint does not belong to this run (method, study or content differ) or is damaged."""

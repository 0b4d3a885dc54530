"""Search space -> trial config: dotted config paths, conditional parameters, suggestion.

A trial's config is the study's resolved config (a plain dict) with every *active* parameter
written at its path, in the order the parameters are listed; a parameter is active when each
path of its ``when`` holds one of the listed values at that point. The same walk rebuilds a
finished trial's config from its stored parameters.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import optuna

from robustmm.config.loader import list_position
from robustmm.errors import ConfigError
from robustmm.tune.config import CategoricalParam, FloatParam, IntParam, SweepConfig

#: returned by a chooser to leave a parameter out (a stored trial that never reached it)
SKIP = object()
_MISSING = object()

Chooser = Callable[[str, Any], Any]


# --------------------------------------------------------------------------- categorical values
def _encoded(param: CategoricalParam) -> bool:
    """Optuna stores None/bool/int/float/str choices; others (lists, mappings) go in as JSON text."""
    return any(not (c is None or isinstance(c, (bool, int, float, str))) for c in param.choices)


def choice_labels(param: CategoricalParam) -> list[Any]:
    return [json.dumps(c) for c in param.choices] if _encoded(param) else list(param.choices)


def encode(param: Any, value: Any) -> Any:
    """A config value as Optuna stores it (used for ``initial_trials``)."""
    return json.dumps(value) if isinstance(param, CategoricalParam) and _encoded(param) else value


def decode(param: Any, stored: Any) -> Any:
    return json.loads(stored) if isinstance(param, CategoricalParam) and _encoded(param) else stored


def shown_params(sweep: SweepConfig, stored: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as the study file writes them (a list choice as the list, not the JSON text
    Optuna stores), for summaries and reports; a parameter the sweep no longer has is shown as stored."""
    return {name: decode(sweep.params[name], value) if name in sweep.params else value
            for name, value in stored.items()}


# --------------------------------------------------------------------------- paths
def _list_index(node: list, segment: str, path: str) -> int:
    try:
        return list_position(node, segment)
    except ValueError as exc:
        raise ConfigError(f"sweep.params: '{path}': {exc}") from None


def get_path(raw: dict[str, Any], path: str) -> Any:
    node: Any = raw
    for segment in path.split("."):
        if isinstance(node, list):
            try:
                node = node[_list_index(node, segment, path)]
            except ConfigError:
                return _MISSING
        elif isinstance(node, dict) and segment in node:
            node = node[segment]
        else:
            return _MISSING
    return node


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Write ``value`` at ``path``, creating missing mappings (the schema rejects unknown keys later)."""
    segments = path.split(".")
    node: Any = raw
    for depth, segment in enumerate(segments[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, segment, path)]
            continue
        if node.get(segment) is None:
            node[segment] = {}
        node = node[segment]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"sweep.params: '{path}': '{'.'.join(segments[:depth + 1])}' is a value, not a section")
    last = segments[-1]
    if isinstance(node, list):
        node[_list_index(node, last, path)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"sweep.params: '{path}': '{'.'.join(segments[:-1])}' is a value, not a section")


# --------------------------------------------------------------------------- trials
def is_active(raw: dict[str, Any], param: Any) -> bool:
    return all(get_path(raw, path) in values for path, values in param.condition().items())


def suggest(trial: optuna.Trial, name: str, param: Any) -> Any:
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
    return decode(param, trial.suggest_categorical(name, choice_labels(param)))


def apply_params(base: dict[str, Any], sweep: SweepConfig, choose: Chooser) -> dict[str, Any]:
    """A copy of ``base`` with the value ``choose(name, param)`` written for every active parameter."""
    raw = copy.deepcopy(base)
    for name, param in sweep.params.items():
        if not is_active(raw, param):
            continue
        value = choose(name, param)
        if value is not SKIP:
            set_path(raw, name, value)
    return raw


def suggest_config(base: dict[str, Any], sweep: SweepConfig, trial: optuna.Trial) -> dict[str, Any]:
    return apply_params(base, sweep, lambda name, param: suggest(trial, name, param))


def stored_config(base: dict[str, Any], sweep: SweepConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The config of a trial from its stored (Optuna-encoded) parameters."""
    return apply_params(base, sweep, lambda name, param: decode(param, params[name]) if name in params else SKIP)


def encoded_initial_trials(sweep: SweepConfig) -> list[dict[str, Any]]:
    return [{name: encode(sweep.params[name], value) for name, value in trial.items()}
            for trial in sweep.initial_trials]


def check_space(base: dict[str, Any], sweep: SweepConfig, validate: Callable[[dict[str, Any]], Any]) -> None:
    """Fail before any trial runs when a parameter path or value cannot make a valid study.

    Each bound (or choice) of each parameter is written into the base config, with the
    parameter's ``when`` paths set to their first allowed value, and validated.
    """
    for name, param in sweep.params.items():
        for value in param.bounds():
            raw = copy.deepcopy(base)
            for path, values in param.condition().items():
                set_path(raw, path, values[0])
            set_path(raw, name, value)
            # parameters that exist only with this value (``when: {name: value}``) are set as a trial would
            for other, dependent in sweep.params.items():
                when = dependent.condition()
                if other != name and set(when) == {name} and value in when[name]:
                    set_path(raw, other, dependent.bounds()[0])
            try:
                validate(raw)
            except ConfigError as err:
                raise ConfigError(f"sweep.params.{name} = {value!r} does not give a valid study:\n{err}") from None
    for i, params in enumerate(encoded_initial_trials(sweep)):
        try:
            validate(stored_config(base, sweep, params))
        except ConfigError as err:
            raise ConfigError(f"sweep.initial_trials.{i} does not give a valid study:\n{err}") from None

"""Read a study file: presets (``include``), profiles, ``--set`` overrides, validation.

Order of precedence (later wins): included presets in the order listed, the study file itself,
the selected profile, then ``--set key.path=value`` overrides.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ValidationError

from robustmm.config.schema import BOOL_FOR_NUMBER, StudyConfig
from robustmm.errors import ConfigError

#: the presets that ship inside the package (``include: [model/small3d]`` is
#: robustmm/presets/model/small3d.yaml); found relative to the package, so editable and plain
#: installs alike have them (pyproject.toml packages them as package data)
PACKAGE_PRESETS = Path(__file__).resolve().parents[1] / "presets"
#: a project's own presets: a folder of this name next to its studies/ folder or in the working
#: directory, searched before the package's (a name there overrides a shipped preset)
PROJECT_PRESET_DIR_NAME = "configs"
#: the section a run folder's config.yaml adds to the resolved study (robustmm.report.rundir.write_config):
#: what robustmm recorded about the run, never a setting; these are the fields it may hold
RUN_RECORD_KEY = "run"
RUN_RECORD_FIELDS = ("seed", "device", "threads", "distributed", "environment", "final_test_of_trial",
                     "checkpoints_from")
#: fields that older versions wrote into the run record and this one no longer does (``synthetic``: until
#: commit 89c6e53; metrics.json says it now); accepted so those run folders still load, and ignored
LEGACY_RUN_RECORD_FIELDS = ("synthetic",)


def preset_file(name: str) -> Path:
    """The shipped preset ``name`` (e.g. ``methods/mmanet``) as a file path."""
    return PACKAGE_PRESETS / f"{name}.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} cannot be a mapping key",
                                                        key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice in the same section (first {seen[key]}); keep one",
                    key_node.start_mark)
            seen[key] = f"at line {key_node.start_mark.line + 1}"
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Safe YAML (no Python objects: the loader is a SafeLoader) with duplicate keys refused."""
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(exc: BaseException) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    context = getattr(exc, "context", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{f'{context}: ' if context else ''}{problem}{where}"


def read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist (check the path; studies live in studies/)")
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save the study file as "
                          "UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read study file {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys (name:, data:, methods: ...), not {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; lists and scalars in ``update`` replace those in ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def preset_dirs(study_path: Path) -> list[Path]:
    """Where ``include: [name]`` is looked up, first match wins: a ``configs/`` folder next to the
    study's studies/ folder, one in the working directory, then the presets shipped in the package."""
    candidates = [study_path.resolve().parent.parent / PROJECT_PRESET_DIR_NAME,
                  Path.cwd() / PROJECT_PRESET_DIR_NAME, PACKAGE_PRESETS]
    seen: list[Path] = []
    for c in candidates:
        if c.is_dir() and c not in seen:
            seen.append(c)
    return seen


def resolve_includes(raw: dict[str, Any], study_path: Path) -> dict[str, Any]:
    names = raw.pop("include", []) or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{study_path}: 'include' must be a preset name or a list of them, e.g. include: "
                          f"[model/small3d, training/cpu] (got {names!r})")
    merged: dict[str, Any] = {}
    dirs = preset_dirs(study_path)
    for name in names:
        found = next((d / f"{name}.yaml" for d in dirs if (d / f"{name}.yaml").is_file()), None)
        if found is None:
            available = sorted(str(p.relative_to(d))[:-5] for d in dirs for p in d.rglob("*.yaml"))
            hint = difflib.get_close_matches(str(name), available, n=1)
            raise ConfigError(
                f"{study_path}: include '{name}' was not found in {[str(d) for d in dirs]}"
                + (f"; did you mean '{hint[0]}'?" if hint else f"; available presets: {available}")
            )
        merged = deep_merge(merged, resolve_includes(read_yaml(found), found))
    return deep_merge(merged, raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set '{text}' must look like key.path=value (e.g. training.epochs=5)")
    key, value = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set '{text}' has an empty key path")
    if "" in key.strip().split("."):
        raise ConfigError(f"--set '{text}': the key path '{key.strip()}' has an empty part (two dots in a row, or a "
                          "dot at an end); write it like training.epochs")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def apply_override(cfg: dict[str, Any], path: list[str], value: Any) -> list[str]:
    """Set ``value`` at ``path``; returns the path with list elements named by their index (as the
    validation errors name them: ``methods.dispro.lr`` -> ``methods.2.lr``)."""
    node: Any = cfg
    resolved: list[str] = []
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            index = _list_index(part, node, path)
            node, part = node[index], str(index)
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"--set {'.'.join(path)}: '{'.'.join(path[: i + 1])}' is a value, not a section")
        resolved.append(part)
    last = path[-1]
    if isinstance(node, list):
        index = _list_index(last, node, path)
        node[index], last = value, str(index)
    else:
        node[last] = value
    return [*resolved, last]


def _list_index(part: str, node: list, path: list[str]) -> int:
    try:
        return list_position(node, part)
    except ValueError as exc:
        raise ConfigError(f"--set {'.'.join(path)}: {exc}") from None


def _drop_old_selection_key(raw: dict[str, Any], keys: list[str]) -> None:
    """An override of ``training.selection`` (or a key of it) also replaces what the file's
    ``training.early_stopping`` (the old name, whose keys win over ``selection``'s) says there, so
    that the command line wins as everywhere else."""
    training = raw.get("training")
    old = training.get("early_stopping") if isinstance(training, dict) else None
    if keys[:2] != ["training", "selection"] or not isinstance(old, dict):
        return
    if len(keys) == 2:
        del training["early_stopping"]
    else:
        old.pop(keys[2], None)


def list_position(node: list, segment: str) -> int:
    """The list element a dotted-path segment names: an index, or the element's id (a mapping's ``id``,
    else its ``name``: ``methods.dispro`` is the method named dispro). ValueError says which segments
    would do."""
    if segment.isdigit():
        if int(segment) >= len(node):
            raise ValueError(f"index {segment} is past the end of a list of {len(node)} items")
        return int(segment)
    items = [item if isinstance(item, dict) else {} for item in node]
    ids = [item.get("id") or item.get("name") for item in items]
    found = [i for i, ident in enumerate(ids) if ident == segment]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{len(found)} items have id '{segment}'; name one by its index ({found})")
    # a method with an id is addressed by that id, not by its name
    named = [i for i, item in enumerate(items) if item.get("name") == segment]
    hint = f"; the item named '{segment}' is index {named[0]} (id '{ids[named[0]]}')" if len(named) == 1 else ""
    known = [i for i in ids if i is not None]
    raise ValueError(f"'{segment}' is neither an index (0-{len(node) - 1}) nor an id of the list"
                     + (f" (ids: {known})" if known else "") + hint)


def drop_run_record(raw: dict[str, Any], path: Path) -> None:
    """Remove the ``run:`` record of a run folder's config.yaml from ``raw``, after checking that it holds
    only what robustmm records, so a misplaced setting there is refused rather than silently ignored."""
    if RUN_RECORD_KEY not in raw:
        return
    record = raw.pop(RUN_RECORD_KEY)
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: '{RUN_RECORD_KEY}' is the record a run folder's config.yaml keeps of its run "
                          f"(a mapping of {list(RUN_RECORD_FIELDS)}), not a setting (got {type(record).__name__}); "
                          f"remove it")
    unknown = [str(k) for k in record if k not in RUN_RECORD_FIELDS + LEGACY_RUN_RECORD_FIELDS]
    if unknown:
        raise ConfigError(f"{path}: unknown key '{RUN_RECORD_KEY}.{unknown[0]}'; '{RUN_RECORD_KEY}' is only the "
                          f"record a run folder's config.yaml keeps of its run ({list(RUN_RECORD_FIELDS)}) and is "
                          "ignored when the file is run again: put settings in the study's sections (training:, "
                          "data:, ...)")


def load_study(
    path: str | Path,
    overrides: list[str] | None = None,
    profile: str | None = None,
) -> StudyConfig:
    """Read, merge and validate a study file. Raises ConfigError naming the key path.

    A run folder's (or sweep trial's) config.yaml is a study file too: its ``run:`` record is checked and
    dropped, so ``robustmm run RUN/config.yaml`` trains that configuration again in a new folder."""
    path = Path(path)
    study = read_yaml(path)
    drop_run_record(study, path)  # the study file's own: a preset holds no run record
    raw = resolve_includes(study, path)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must map profile names to settings, e.g. profiles: {{full: {{training: "
                          f"{{epochs: 120}}}}}} (got {type(profiles).__name__})")
    if profile is not None:
        if profile not in profiles:
            hint = difflib.get_close_matches(profile, [str(p) for p in profiles], n=1)
            raise ConfigError(f"{path}: profile '{profile}' is not defined"
                              + (f"; did you mean '{hint[0]}'?" if hint else "")
                              + f" (profiles: {sorted(profiles) or 'none'})")
        if not isinstance(profiles[profile] or {}, dict):
            raise ConfigError(f"{path}: profile '{profile}' must be a mapping of the settings it changes, e.g. "
                              f"{profile}: {{training: {{epochs: 120}}}} (got {type(profiles[profile]).__name__})")
        raw = deep_merge(raw, profiles[profile] or {})
    # a problem in a profile is not where the study's own sections are: the error says which profile
    origins = dict.fromkeys(_key_paths(profiles[profile] or {}), f"--profile {profile}") if profile else {}
    for text in overrides or []:
        keys, value = parse_override(text)
        keys = apply_override(raw, keys, value)
        origins[".".join(keys)] = text.strip()
        _drop_old_selection_key(raw, keys)
    # data roots stay relative to the working directory, like every other CLI path
    cfg = validate(StudyConfig, raw, source=str(path), origins=origins)
    cfg._source, cfg._origins = str(path), origins
    return cfg


def _key_paths(section: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted key path of every value in ``section`` (a list is one value: a profile replaces it whole)."""
    paths = []
    for key, value in section.items():
        path = f"{prefix}{key}"
        paths += _key_paths(value, path + ".") if isinstance(value, dict) and value else [path]
    return paths


def validate(model: type[BaseModel], raw: dict[str, Any], source: str, prefix: str = "",
             origins: dict[str, str] | None = None) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, source, prefix, origins)) from None


def command_line_origin(key: str, origins: dict[str, str], below: bool = False) -> str:
    """Where the value at ``key`` came from when not from the file: the override whose key path is
    ``key`` or encloses it, or with ``below`` one inside it (an unknown key an override made, a
    scenario an override changed)."""
    for path, text in origins.items():
        if key == path or key.startswith(path + ".") or (below and path.startswith(key + ".")):
            return f" (from the command line: {text})"
    return ""


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str, prefix: str = "",
                            origins: dict[str, str] | None = None) -> str:
    """One line per problem, naming the key path; ``origins`` (key path -> ``key=value`` as given on the
    command line) marks the problems an override caused, which the file itself does not contain."""
    lines = [f"{source}: invalid configuration"]
    for e in _merge_union_errors(model, err.errors()):
        loc = _display_loc(model, e["loc"])
        key = ".".join(([prefix] if prefix else []) + loc)
        kind = e["type"]
        below = False
        quote_hint = ""
        if kind == "extra_forbidden":
            valid = _fields_at(model, e["loc"][:-1])
            hint = difflib.get_close_matches(loc[-1], valid, n=1)
            msg = f"unknown key '{key}'"
            msg += f"; did you mean '{hint[0]}'?" if hint else (f"; valid keys here: {sorted(valid)}" if valid else "")
            below = True  # an override below a key the file does not have made it
        elif kind == "union_tag_invalid":  # e.g. data.kind or a scenario's kind misspelt
            tags = [t.strip().strip("'") for t in e["ctx"]["expected_tags"].split(",")]
            tag = e["ctx"]["tag"]
            hint = difflib.get_close_matches(str(tag), tags, n=1)
            key = f"{key}.kind" if key else "kind"
            msg = (f"'{key}': unknown kind '{tag}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                   + f" (kinds: {', '.join(tags)})")
        elif kind == "union_tag_not_found":
            msg = f"'{key}' needs a 'kind' key (one of: {', '.join(_kinds_at(model, e['loc']))})"
        elif kind == UNION_MISMATCH:
            msg = f"'{key}' takes {e['msg']} (got {_shown(e.get('input'))})"
        elif kind == "missing" and loc and loc[-1].isdigit():  # a fixed-length list given too few items
            parent = key.rsplit(".", 1)[0]
            msg = f"'{parent}' has too few values: item {int(loc[-1]) + 1} is missing"
        elif kind == "missing":
            msg = f"missing required key '{key}'"
        elif kind in MAPPING_TYPE_ERRORS and isinstance(e.get("input"), str):  # methods: [dropout_baseline]
            msg = f"'{key}' is a mapping of keys, not a single word{_as_mapping(model, e['loc'], e['input'])}"
        elif kind in CONTAINER_TYPE_ERRORS and (wanted := _type_at(model, e["loc"])) is not None:  # scenarios: 3
            msg = f"'{key}' takes {describe_type(wanted)} (got {_shown(e.get('input'))})"
        elif not key:  # a check of the whole study (its message names the keys)
            msg = str(e["ctx"]["error"]) if kind == "value_error" else e["msg"]
        else:
            got = e.get("input")
            if isinstance(got, dict) and kind == "value_error":  # a check across keys: its message names them
                msg = f"'{key}': {e['ctx']['error']}"
            else:  # a validator's own message, without pydantic's "Value error, " in front
                text = str(e["ctx"]["error"]) if kind == "value_error" else e["msg"]
                msg = f"'{key}': {text} (got {_shown(got)})"
                quote_hint = _quote_hint(e, (origins or {}).get(key))
        lines.append("  - " + msg + command_line_origin(key, origins or {}, below) + quote_hint)
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else repr(value)


#: the error type :func:`_merge_union_errors` gives a value that fits no member of a union (its ``msg``
#: says in words what the key takes)
UNION_MISMATCH = "union_mismatch"
#: pydantic's errors for a value of the wrong type or form for a member of a union: the value was meant as
#: another member (a tag error is not one: a mapping with a 'kind' was meant as that member)
WRONG_TYPE_ERRORS = ("int_from_float", "literal_error", "is_instance_of", "enum")


def _merge_union_errors(model: type[BaseModel], errors: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """pydantic's errors with the members of unions (``fold: int | Literal["all"]``) told in user terms.

    pydantic tries each member of such a union and reports one error per member, its loc naming the member
    in pydantic's own terms (``split.fold.literal['all']``). Where the value had the form of a member (a
    list given to ``int | list[int]`` with a bad item, an int below a bound) only that member's errors are
    kept, with the member's name taken out of the loc; where it fits no member, the member errors become one
    error that says what the key takes. ``start``: the first loc position that may name a member."""
    out: list[dict[str, Any]] = []
    groups: dict[tuple, dict[str, Any]] = {}  # the union's loc -> its merged error
    for e in errors:
        found = _union_member_at(model, e["loc"], start)
        if found is None:
            out.append(e)
            continue
        i, union = found
        at = e["loc"][:i]
        if at not in groups:
            groups[at] = {"type": UNION_MISMATCH, "loc": at, "msg": describe_type(union), "input": None,
                          "position": i, "members": []}
            out.append(groups[at])
        groups[at]["members"].append(e)
    merged: list[dict[str, Any]] = []
    for e in out:
        if e["type"] != UNION_MISMATCH:
            merged.append(e)
            continue
        i, members = e.pop("position"), e.pop("members")
        # an error inside the member's value, or one other than a wrong type (a bound), is the member meant
        meant = [{**m, "loc": m["loc"][:i] + m["loc"][i + 1:]} for m in members
                 if len(m["loc"]) > i + 1 or not _wrong_type(m["type"])]
        if meant:  # a union inside the member (list[int | str]) is told the same way
            merged += _merge_union_errors(model, meant, i + 1)
        else:
            merged.append({**e, "input": members[0]["input"]})
    return merged


def _wrong_type(kind: str) -> bool:
    return kind.endswith(("_type", "_parsing")) or kind in WRONG_TYPE_ERRORS


def _union_member_at(model: type[BaseModel], loc: tuple, start: int = 0) -> tuple[int, Any] | None:
    """Where ``loc`` names a member of a union that pydantic tries member by member (not one it picks by
    ``kind``), at or after position ``start``: the member's position in ``loc`` and the union."""
    annotation: Any = model
    for i, part in enumerate(loc):
        members, tagged = _union_members(annotation)
        if i >= start and len(members) > 1 and not tagged and isinstance(part, str):
            return i, annotation
        annotation = _type_below(members, part)
        if annotation is None:
            return None
    return None


def _type_at(model: type[BaseModel], loc: tuple) -> Any:
    """The type wanted at ``loc`` (a loc without union members' names), None when ``loc`` leads nowhere."""
    annotation: Any = model
    for part in loc:
        annotation = _type_below(_union_members(annotation)[0], part)
        if annotation is None:
            return None
    return annotation


def _union_members(annotation: Any) -> tuple[list[Any], bool]:
    """The types ``annotation`` allows (None left out, ``Annotated`` taken off) and whether they are told
    apart by a discriminator."""
    tagged = False
    while typing.get_origin(annotation) is Annotated:
        annotation, *meta = typing.get_args(annotation)
        tagged = tagged or any(getattr(m, "discriminator", None) for m in meta)
    if typing.get_origin(annotation) not in (Union, types.UnionType):
        return [annotation], tagged
    members = [m for m in typing.get_args(annotation) if m is not type(None)]
    if len(members) == 1:  # X | None: pydantic reports X's errors only
        return _union_members(members[0])
    return members, tagged


def _type_below(members: list[Any], part: Any) -> Any:
    """The type at loc element ``part`` inside a value of one of ``members``: a model's field (with its
    discriminator), a tagged model, a list's item, a mapping's value; None when no member has it."""
    for member in map(_bare, members):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if _is_model(member):
            field = member.model_fields.get(part) if isinstance(part, str) else None
            if field is not None:
                return Annotated[field.annotation, field] if field.discriminator else field.annotation
            if part in _kind_values(member):
                return member
        elif origin in (list, set, frozenset) and args and isinstance(part, int):
            return args[0]
        elif origin is tuple and args and isinstance(part, int):
            if len(args) == 2 and args[1] is Ellipsis:
                return args[0]
            return args[part] if part < len(args) else None
        elif origin is dict and len(args) == 2:
            return args[1]
    return None


def _bare(annotation: Any) -> Any:
    """``annotation`` without ``Annotated``'s constraints."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _kind_values(model: type[BaseModel]) -> tuple:
    field = model.model_fields.get("kind")
    return typing.get_args(field.annotation) if field is not None else ()


#: how a message names a value of each scalar type: (one, several)
TYPE_WORDS: dict[Any, tuple[str, str]] = {
    int: ("a whole number", "whole numbers"), float: ("a number", "numbers"), str: ("text", "text values"),
    bool: ("true or false", "booleans"), Path: ("a path", "paths"), Any: ("any value", "any values"),
}


def describe_type(annotation: Any, several: bool = False) -> str:
    """What a value of ``annotation`` may be, in a user's words: ``int | Literal["all"]`` is "a whole number
    or 'all'", ``list[int]`` "a list of whole numbers"."""
    members, tagged = _union_members(annotation)
    kinds = [k for m in members for k in _kind_values(m)] if tagged and all(map(_is_model, members)) else []
    if kinds:  # a union picked by 'kind' (scenarios, data sections)
        word = "mappings" if several else "a mapping"
        return f"{word} with a 'kind' key ({', '.join(map(str, kinds))})"
    words: list[str] = []
    for member in map(_bare, members):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if origin is Literal:
            words += [repr(v) for v in args]
        elif _is_model(member):
            words.append("mappings of keys" if several else "a mapping of keys")
        elif origin in (list, tuple, set, frozenset):
            words.append(("lists" if several else "a list") + _list_items(origin, args))
        elif origin is dict:
            words.append("mappings" if several else "a mapping")
        else:
            one, many = TYPE_WORDS.get(member, (getattr(member, "__name__", str(member)),) * 2)
            words.append(many if several else one)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _list_items(origin: Any, args: tuple) -> str:
    """What a list of ``origin[args]`` holds, in words: " of 3 whole numbers" for a fixed-length tuple."""
    if not args:
        return ""
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        kinds = {describe_type(a, True) for a in args}
        return f" of {len(args)} {kinds.pop()}" if len(kinds) == 1 else f" of {len(args)} values"
    return f" of {describe_type(args[0], True)}"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


#: pydantic's errors for a value that is not a mapping where a section (a method, a scenario) was wanted
MAPPING_TYPE_ERRORS = ("model_type", "model_attributes_type", "dict_type")
#: the same for any container (a list of scenarios, a volume shape): the message says what the key takes
CONTAINER_TYPE_ERRORS = (*MAPPING_TYPE_ERRORS, "list_type", "tuple_type")


def _as_mapping(model: type[BaseModel], loc: tuple, word: str) -> str:
    """How to write ``word`` as the section at ``loc``: as its kind or its name, when it can be one."""
    if word in _kinds_at(model, loc):
        return f"; write {{kind: {word}}}"
    if "name" in _fields_at(model, loc):
        return f"; write {{name: {word}}}"
    return ""


#: pydantic's errors for a value that is not text where text (a string, a path) was wanted
TEXT_TYPE_ERRORS = ("string_type", "path_type")


def _quote_hint(error: dict[str, Any], override: str | None) -> str:
    """How to keep a word as text where YAML 1.1 (PyYAML) read it as something else and text was wanted:
    an unquoted no, yes, on or off is a boolean, 2026-01-01 a date. ``override``: the ``key=value`` given
    on the command line for this key, if any (without it, the word written is unknown: it is in the file,
    or inside a section given whole on the command line)."""
    got = error.get("input")
    if error["type"] == BOOL_FOR_NUMBER:  # quoting would not help there: a number would
        return _number_hint(got, override)
    if not isinstance(got, (bool, datetime.date)):
        return ""
    if override is None or "=" not in override:  # not a --set of this key ("--profile NAME" has no '=')
        if error["type"] not in TEXT_TYPE_ERRORS:
            return ""
        return f"; {YAML_BOOLEANS} and 2026-01-01 as a date: quote the value, e.g. name: 'no'"
    key, value = (part.strip() for part in override.split("=", 1))
    allowed = str(error.get("ctx", {}).get("expected", ""))
    if not (error["type"] in TEXT_TYPE_ERRORS or f"'{value}'" in allowed):  # as text it would fail too
        return ""
    read_as = "a date" if isinstance(got, datetime.date) else f"the boolean {got}"
    return f"; YAML reads {value} as {read_as}: quote it, --set \"{key}='{value}'\""


#: why a word became a boolean (PyYAML reads YAML 1.1)
YAML_BOOLEANS = "YAML reads an unquoted no/yes/on/off as a boolean"


def _number_hint(got: bool, override: str | None) -> str:
    """How to fix the boolean ``got`` given where a number was wanted (``override``: as for :func:`_quote_hint`)."""
    if override is None or "=" not in override:
        return f"; {YAML_BOOLEANS}: give a number"
    key, value = (part.strip() for part in override.split("=", 1))
    return f"; YAML reads {value} as the boolean {got}: give {key} a number"


def _display_loc(model: Any, loc: tuple) -> list[str]:
    """The key path a user wrote: pydantic's loc without discriminated-union tags."""
    shown = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and i > 0 and _is_union_tag(model, loc[:i], part):
            continue
        shown.append(str(part))
    return shown


def _is_union_tag(model: Any, parent: tuple, part: str) -> bool:
    import typing

    if part in _fields_at(model, parent):
        return False
    current = _annotation_at(model, parent)
    return any(part in typing.get_args(c.model_fields["kind"].annotation)
               for c in _model_candidates(current) if "kind" in c.model_fields)


def _kinds_at(model: Any, loc: tuple) -> list[str]:
    """The ``kind`` values the union at ``loc`` accepts (e.g. every scenario kind)."""
    import typing

    return [k for c in _model_candidates(_annotation_at(model, loc)) if "kind" in c.model_fields
            for k in typing.get_args(c.model_fields["kind"].annotation)]


def _annotation_at(model: Any, loc: tuple) -> Any:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        for cand in _model_candidates(current):
            if part in cand.model_fields:
                current = cand.model_fields[part].annotation
                break
    return current


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """Field names of the (sub)model addressed by ``loc`` in a pydantic error."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        origin_args = _model_candidates(current)
        nxt = None
        for cand in origin_args:
            if part in cand.model_fields:
                nxt = cand.model_fields[part].annotation
                break
            # discriminated unions put the tag value in loc
            if getattr(cand.model_fields.get("kind"), "annotation", None) is not None:
                args = typing.get_args(cand.model_fields["kind"].annotation)
                if part in args:
                    nxt = cand
                    break
        if nxt is None:
            return []
        current = nxt
    names: list[str] = []
    for cand in _model_candidates(current):
        names.extend(cand.model_fields)
    return sorted(set(names))


def _model_candidates(tp: Any) -> list[type[BaseModel]]:
    import typing

    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(tp):
        out.extend(_model_candidates(arg))
    return out


def to_plain(cfg: BaseModel) -> dict[str, Any]:
    """JSON/YAML-safe dict of a validated config (paths as strings, tuples as lists)."""
    return cfg.model_dump(mode="json")


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Where two plain configs differ, as ``key.path: old -> new`` (values shortened), in key order."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += config_differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    if old == new:
        return []

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    return [f"{prefix or '(whole config)'}: {short(old)} -> {short(new)}"]


def describe_differences(differences: list[str], most: int = 4) -> str:
    """The first ``most`` differences, joined, with a count of the rest."""
    shown = "; ".join(differences[:most])
    return shown + (f"; and {len(differences) - most} more" if len(differences) > most else "")

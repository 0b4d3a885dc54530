"""Checks that what a Markdown document shows a user works as shown (used by test_docs.py).

``check_document(path)`` returns a list of problems, each naming the document and line:
- every fenced ``bash`` line segment that starts with ``robustmm`` names real sub-commands and
  options (``{a,b}`` alternatives expanded, checked against the CLI's own parser); a ``run``
  of a study in the repository also loads and validates that study with its ``--set`` and
  ``--profile`` options;
- every fenced ``python`` block runs without error (in a temporary working folder), except a block
  that names a file after its language (```` ```python my_methods.py ````): that is a file of a
  worked example, which may import the example's other files; it is only compiled here, and the
  example's own test runs it (see :func:`file_blocks`);
- every fenced ``yaml`` block that looks like a study (``name`` and ``methods``) validates;
- every ``robustmm.x.y`` name in the text is importable;
- every ``studies/*.yaml`` path in the text exists and validates, and every relative Markdown
  link outside code blocks points at an existing file.
``check_cited_paths(yaml_file)`` returns the repository paths cited in a YAML file's comments
that do not exist.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import shlex
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.S | re.M)
_DOTTED = re.compile(r"\brobustmm(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_STUDY_PATH = re.compile(r"\bstudies/[\w.-]+\.ya?ml\b")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_CITED = re.compile(r"(?<![\w/.~-])([\w-]+/[\w./-]*\w\.(?:md|ya?ml|py|json|csv))\b")
_GENERATED = ("datasets/", "runs/")  # folders a run creates; cited paths there need not exist yet
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_.]*$|\.\.\.")


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line number of the opening fence) for every fenced block."""
    return [(m.group(1).lower(), m.group(3), text.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(text)]


def file_blocks(text: str) -> dict[str, str]:
    """File name -> content of the blocks that name a file after their language (a worked example)."""
    return {m.group(2).strip(): m.group(3) for m in _FENCE.finditer(text) if m.group(2).strip()}


def robustmm_commands(code: str) -> list[list[str]]:
    """Token lists of every ``robustmm ...`` segment of a shell block (comments stripped,
    ``&&``/``;``/``|`` split, ``{a,b}`` alternatives expanded into separate commands)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = line.split("#", 1)[0].split()
        segment: list[str] = []
        for tok in tokens + ["&&"]:
            if tok in ("&&", "||", ";", "|"):
                if segment and segment[0] == "robustmm":
                    commands.extend(_expand(segment))
                segment = []
            else:
                segment.append(tok)
    return commands


def _expand(tokens: list[str]) -> list[list[str]]:
    for i, tok in enumerate(tokens):
        m = re.fullmatch(r"\{([\w,-]+)\}", tok)
        if m:
            return [c for alt in m.group(1).split(",") for c in _expand(tokens[:i] + [alt] + tokens[i + 1:])]
    return [tokens]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_names(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def check_command(tokens: list[str], where: str) -> list[str]:
    """Walk ``tokens`` down the CLI's parser tree; unknown sub-commands and options are problems."""
    from robustmm.cli import build_parser

    parser = build_parser()
    path = ["robustmm"]
    rest = [t.strip("[]") for t in tokens[1:]]
    root_options = _option_names(parser)
    problems = []
    while rest:
        tok = rest[0]
        subs = _subparsers(parser)
        if tok.startswith("-") and tok.split("=")[0] in root_options and path == ["robustmm"]:
            rest.pop(0)
            continue
        if not subs or tok.startswith("-") or _PLACEHOLDER.search(tok):
            break
        if tok not in subs:
            problems.append(f"{where}: '{' '.join(path)} {tok}' is not a command (choices: {sorted(subs)})")
            return problems
        parser = subs[tok]
        path.append(tok)
        rest.pop(0)
    if _subparsers(parser) and not rest:
        problems.append(f"{where}: '{' '.join(path)}' needs a sub-command ({sorted(_subparsers(parser))})")
    known = _option_names(parser) | (root_options if path != ["robustmm"] else set())
    for tok in rest:
        flag = tok.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            problems.append(f"{where}: '{' '.join(path)}' has no option {flag}")
    if not problems:
        problems += _help_works(path[1:], where)
        if path[1:2] == ["run"]:
            problems += _study_loads(rest, where)
    return problems


def _help_works(path: list[str], where: str) -> list[str]:
    from robustmm.cli import main

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            main([*path, "--help"])
    except SystemExit as exc:
        if exc.code in (0, None):
            return []
        return [f"{where}: 'robustmm {' '.join(path)} --help' exited {exc.code}: {out.getvalue()[-300:]}"]
    return [f"{where}: 'robustmm {' '.join(path)} --help' did not print help"]


def _study_loads(args: list[str], where: str) -> list[str]:
    """``run STUDY [--set k=v] [--profile p]`` with STUDY in the repository: load and validate it."""
    from robustmm.config import load_study

    study = next((a for a in args if a.endswith((".yaml", ".yml")) and not a.startswith("-")), None)
    if study is None or _PLACEHOLDER.search(Path(study).stem):
        return []
    sets, profile, i = [], None, 0
    while i < len(args):
        if args[i] == "--set" and i + 1 < len(args):
            sets.append(args[i + 1])
            i += 1
        elif args[i] == "--profile" and i + 1 < len(args):
            profile = args[i + 1]
            i += 1
        i += 1
    if not (REPO / study).is_file():
        return [f"{where}: study {study} does not exist in the repository"]
    try:
        load_study(REPO / study, sets, profile)
    except Exception as exc:  # any failure is the problem to report
        return [f"{where}: robustmm run {study} {' '.join(args[1:])}: {exc}"]
    return []


def run_python(code: str, where: str) -> list[str]:
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, where, "exec"), {"__name__": "__docs__"})
        except Exception as exc:
            return [f"{where}: python block raised {type(exc).__name__}: {exc}"]
        finally:
            os.chdir(cwd)
    return []


def check_study_yaml(code: str, where: str) -> list[str]:
    import yaml

    from robustmm.config import load_study

    try:
        raw = yaml.safe_load(code)
    except yaml.YAMLError as exc:
        return [f"{where}: yaml block does not parse: {exc}"]
    if not (isinstance(raw, dict) and "name" in raw and "methods" in raw):
        return []
    problems = _agrees_with_shipped_study(raw, where)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "studies" / "example.yaml"
        path.parent.mkdir()
        path.write_text(code)
        try:
            load_study(path)
        except Exception as exc:
            problems.append(f"{where}: the example study does not validate: {exc}")
    return problems


def _leaves(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix, node


def _agrees_with_shipped_study(raw: dict, where: str) -> list[str]:
    """An example named like a shipped study must show the same values for the keys both have."""
    import yaml

    shipped_path = REPO / "studies" / f"{raw['name']}.yaml"
    if not shipped_path.is_file():
        return []
    shipped = dict(_leaves(yaml.safe_load(shipped_path.read_text())))
    return [f"{where}: the example shows {'.'.join(key)}: {value!r} but studies/{shipped_path.name} has "
            f"{shipped[key]!r}" for key, value in _leaves(raw)
            if key in shipped and key[0] not in ("methods", "profiles") and shipped[key] != value]


def check_name(dotted: str, where: str) -> list[str]:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return [f"{where}: {dotted} is not importable (no {attr!r} in {'.'.join(parts[:cut])})"]
        return []
    return [f"{where}: {dotted} is not importable"]


def check_document(path: Path, repo: Path = REPO) -> list[str]:
    text = path.read_text(encoding="utf-8")
    name = path.name if path.parent == repo else str(path.relative_to(repo) if path.is_relative_to(repo) else path)
    problems: list[str] = []
    fenced_lines = set()
    files = set(file_blocks(text).values())
    for lang, code, line in fenced_blocks(text):
        where = f"{name}:{line}"
        fenced_lines.update(range(line, line + code.count("\n") + 2))
        if lang in ("bash", "sh", "shell", "console"):
            for tokens in robustmm_commands(code):
                problems += check_command(tokens, where)
        elif lang == "python" and code in files:
            try:
                compile(code, where, "exec")
            except SyntaxError as exc:
                problems.append(f"{where}: python file does not compile: {exc}")
        elif lang == "python":
            problems += run_python(code, where)
        elif lang in ("yaml", "yml"):
            problems += check_study_yaml(code, where)
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{lineno}"
        for dotted in sorted(set(_DOTTED.findall(line))):
            problems += check_name(dotted, where)
        for study in sorted(set(_STUDY_PATH.findall(line))):
            if lineno in fenced_lines:
                continue  # commands in blocks are checked with their options above
            problems += _study_loads([study], where) if (repo / study).is_file() else [
                f"{where}: study {study} does not exist in the repository"]
        for target in [] if lineno in fenced_lines else _LINK.findall(line):
            if "://" not in target and not target.startswith("mailto:") and not (path.parent / target).exists():
                problems.append(f"{where}: link target {target} does not exist")
    return problems


def check_cited_paths(yaml_file: Path, repo: Path = REPO) -> list[str]:
    """Paths cited in the comments of a study or preset file that do not exist in the repository."""
    missing = []
    for lineno, line in enumerate(yaml_file.read_text(encoding="utf-8").splitlines(), 1):
        if "#" not in line:
            continue
        for cited in _CITED.findall(line.split("#", 1)[1]):
            if not cited.startswith(_GENERATED) and not (repo / cited).exists():
                missing.append(f"{yaml_file.relative_to(repo) if yaml_file.is_relative_to(repo) else yaml_file}:"
                               f"{lineno}: cites {cited}, which does not exist")
    return missing

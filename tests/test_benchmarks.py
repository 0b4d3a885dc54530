"""The benchmark scripts' command lines: every script answers --help with its description and does
no work; every command recorded in a results page still parses with the script's current options;
the shared bookkeeping writes re-runnable command lines and whole records."""

from __future__ import annotations

import argparse
import ast
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
HELPERS = {"seed_runs.py", "adni_runs.py", "load.py"}  # imported by the scripts, not run
SCRIPTS = sorted(p for p in [*BENCHMARKS.glob("*.py"), *(BENCHMARKS / "itcfn_diagnosis").glob("*.py")]
                 if p.name not in HELPERS)


class _Parsed(Exception):
    """Raised instead of running a script once its arguments parsed."""


@pytest.fixture
def script_imports(monkeypatch: pytest.MonkeyPatch):
    """The sys.path a script run from the repository root has (its own folder first)."""

    def use(script: Path) -> None:
        monkeypatch.syspath_prepend(str(REPO))
        monkeypatch.syspath_prepend(str(script.parent))

    return use


def _normalised(text: str) -> str:
    return "".join(text.split())  # argparse rewraps the text, also inside hyphenated words


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_every_benchmark_script_answers_help(script: Path, script_imports, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    script_imports(script)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    doc = ast.get_docstring(ast.parse(script.read_text()), clean=False)
    first_paragraph = _normalised(doc.split("\n\n")[0])
    assert first_paragraph in _normalised(out), "--help shows the whole first paragraph of the docstring"


def _recorded_commands() -> list[tuple[str, str, str]]:
    """(results page, script, arguments) of every ``Command: `python benchmarks/...``` line."""
    found = []
    for page in sorted((BENCHMARKS / "results").glob("*.md")):
        for span in re.findall(r"^Command: `([^`]*)`", page.read_text(), flags=re.MULTILINE):
            for command in span.split(" ; "):  # seeds run as separate processes, then merged
                m = re.match(r"python (benchmarks/\S+\.py)(.*)", command.strip())
                if m:  # a note in parentheses after a command is not part of it
                    found.append((page.name, m.group(1), re.sub(r"\s+\([^()]*\)\s*$", "", m.group(2))))
    return found


#: pages whose command was written before the scripts quoted --set values (the page's JSON holds
#: the exact overrides); their commands are checked after joining the split value back
UNQUOTED_SET_VALUES = {"mmanet_adni_exposure_design_validation.md"}


@pytest.mark.parametrize("page, script, arguments", _recorded_commands(), ids=lambda v: str(v)[:60])
def test_recorded_commands_parse_with_the_current_options(page: str, script: str, arguments: str, script_imports,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if page in UNQUOTED_SET_VALUES:
        arguments = re.sub(r"--set (\S+=\{[^}]*\})", lambda m: "--set " + shlex.quote(m.group(1)), arguments)
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(parse(self, args, namespace))

    path = REPO / script
    script_imports(path)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(path), *shlex.split(arguments)])
    with pytest.raises(_Parsed):
        runpy.run_path(str(path), run_name="__main__")


def test_changed_options_are_typed_as_a_shell_reads_them() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import seed_runs
    finally:
        sys.path.remove(str(BENCHMARKS))
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--select-on-rmfm", action="store_true")
    parser.add_argument("--knobs", default="{}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(["--n-train", "40", "--select-on-rmfm", "--knobs", '{"word_echo": {"audio": 1.0}}',
                              "--seeds", "3"])
    extra = seed_runs.changed_options(parser, args, skip=("seeds",))
    assert extra == ["--n-train 40", "--select-on-rmfm", "--knobs '{\"word_echo\": {\"audio\": 1.0}}'"]
    again = parser.parse_args(shlex.split(" ".join(extra)))
    assert (again.n_train, again.select_on_rmfm, again.knobs) == (40, True, args.knobs)


def test_appended_records_are_whole(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import seed_runs
    finally:
        sys.path.remove(str(BENCHMARKS))
    page = tmp_path / "trace.md"
    seed_runs.append_text_atomic(page, "first\n", header="# header\n")
    seed_runs.append_text_atomic(page, "second\n", header="# header\n")
    assert page.read_text() == "# header\nfirst\nsecond\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.md"]  # no temporary file left

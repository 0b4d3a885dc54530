"""The README and docs/*.md are tested: commands, Python snippets, names, studies and links work
as shown, and every path a study or preset comment cites exists (see tests/docs_check.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from docs_check import REPO, check_cited_paths, check_document

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
YAML_FILES = sorted((REPO / "studies").glob("*.yaml")) + sorted((REPO / "robustmm" / "presets").rglob("*.yaml"))
PUBLIC_PACKAGES = ["robustmm.config", "robustmm.study", "robustmm.metrics", "robustmm.losses", "robustmm.methods",
                   "robustmm.missing"]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_document_shows_only_what_works(doc):
    assert check_document(doc) == []


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_study_and_preset_comments_cite_existing_files(path):
    assert check_cited_paths(path) == []


def test_the_protocol_notes_are_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    assert "docs/protocols/README.md" in readme
    for note in (REPO / "docs" / "protocols").glob("*.md"):
        if note.name != "README.md":
            assert f"({note.name})" in (REPO / "docs" / "protocols" / "README.md").read_text(), note.name


BROKEN = '''# A broken guide

Call `robustmm.metrics.no_such_metric` or `robustmm.nonexistent_module.thing`.

```bash
robustmm rnu studies/adni_mci.yaml
robustmm run studies/adni_mci.yaml --epochs 3
robustmm run studies/adni_mci.yaml --set training.epoch=3
robustmm run studies/missing_study.yaml
pip install -e . && robustmm data synth {adni,nope} --out x
```

```python
from robustmm.metrics import auilc
assert auilc([1.0, 0.0], [0.0, 1.0]) == 0.75
```

```yaml
name: example
methods: [{name: dropout_baseline}]
data: {kind: adni, root: x, volume_shap: [8, 8, 8]}
```

```yaml
name: adni_mci
data: {kind: adni, root: datasets/adni_synth, synthetic: {subjects: 360, seed: 0}}
methods: [{name: dropout_baseline}]
```

See [the missing note](docs/protocols/nothing.md) and studies/not_there.yaml.
'''


def test_the_checker_finds_each_kind_of_broken_example(tmp_path):
    doc = tmp_path / "GUIDE.md"
    doc.write_text(BROKEN)
    problems = "\n".join(check_document(doc))
    expected = [
        "robustmm.metrics.no_such_metric is not importable",
        "robustmm.nonexistent_module.thing is not importable",
        "'robustmm rnu' is not a command",
        "'robustmm run' has no option --epochs",
        "training.epoch",                      # the misspelt --set key fails validation
        "study studies/missing_study.yaml does not exist",
        "'robustmm data synth nope' is not a command",
        "python block raised AssertionError",
        "the example study does not validate",
        "link target docs/protocols/nothing.md does not exist",
        "study studies/not_there.yaml does not exist",
        "the example shows data.synthetic.subjects: 360 but studies/adni_mci.yaml has 480",
    ]
    for text in expected:
        assert text in problems, f"the checker missed: {text}\n{problems}"
    assert "synth adni" not in problems       # the valid alternative of {adni,nope} passes


def test_files_of_a_worked_example_are_compiled_not_run_and_code_is_no_link(tmp_path):
    doc = tmp_path / "GUIDE.md"
    doc.write_text("```python helper.py\nVALUE = 1\n```\n\n```python main.py\nimport helper\n```\n\n"
                   "```python broken.py\ndef f(:\n```\n\n```python\nx = f(a)[0](b)\n```\n")
    problems = check_document(doc)
    assert len(problems) == 2, problems
    assert "GUIDE.md:9: python file does not compile" in problems[0]
    assert "GUIDE.md:13: python block raised NameError" in problems[1]  # a plain snippet still runs


def test_a_study_comment_citing_a_missing_file_is_found(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("# protocol: docs/protocols/rmfm.md and specs/gone.md\nname: x  # see configs/none.yaml\n"
                     "# the cohort goes to datasets/adni_synth/README.md when generated\n")
    missing = check_cited_paths(study)
    assert [m.split("cites ")[1].split(",")[0] for m in missing] == ["specs/gone.md", "configs/none.yaml"]


def test_auilc_one_liner_from_the_issue():
    out = subprocess.run([sys.executable, "-c", "from robustmm.metrics import auilc; "
                          "print(auilc([0.9, 0.8, 0.6], [0, 0.5, 1]))"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.775"


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_public_packages_export_what_they_list(package):
    import importlib

    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_the_readme_api_table_lists_what_each_package_exports(package):
    import importlib
    import re

    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(f"| `{package}` |"))
    listed = set(re.findall(r"`(\w+)`", row.split("|")[2]))
    assert listed == set(importlib.import_module(package).__all__), package


@pytest.mark.parametrize("row, section", [("`data` (adni)", "AdniDataConfig"), ("`split`", "SplitConfig"),
                                          ("`model`", "ModelConfig"), ("`training`", "TrainingConfig"),
                                          ("`evaluation`", "EvaluationConfig"), ("`report`", "ReportConfig")])
def test_the_readme_key_table_names_every_key_of_a_section(row, section):
    import re

    from robustmm.config import schema

    line = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(f"| {row} |"))
    named = set(re.findall(r"`(\w+)`", line.split("|")[2]))
    assert set(getattr(schema, section).model_fields) - {"kind"} <= named, row


def test_the_readme_notebook_example_runs_a_study_and_reads_its_records(tmp_path, monkeypatch):
    """The README's Python example, run as written but on a 1-epoch, 2-seed, 2-method budget."""
    import re

    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python notebook.py\n(.*?)```", readme, re.S).group(1)
    budget = '"seeds=[0, 1, 2, 3, 4]", "training.epochs=20"'
    assert budget in code, "update this test with the README example"
    small = ('"seeds=[0, 1]", "training.epochs=1", "training.threads=1", "data.synthetic.subjects=160", '
             '"methods=[{name: complete_only}, {name: dropout_baseline}]"')
    code = code.replace(budget, small)
    code = code.replace('"studies/adni_mci.yaml"', repr(str(REPO / "studies" / "adni_mci.yaml")))
    monkeypatch.chdir(tmp_path)
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = printed.strip().splitlines()
    assert lines[-1] == "runs/adni_mci_notebook/report.html" and (tmp_path / lines[-1]).is_file()
    rows = {line.split()[0]: line for line in lines[:-1]}
    assert set(rows) == {"complete_only", "dropout_baseline"}
    assert rows["dropout_baseline"].endswith("None")  # the reference has no verdict against itself
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] (better|worse|no clear difference)$", rows["complete_only"])

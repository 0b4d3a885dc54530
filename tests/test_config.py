"""Study files: validation with key paths and suggestions, presets, profiles, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from robustmm.cli import main
from robustmm.config import load_study
from robustmm.errors import ConfigError
from robustmm.study import validate_method_options

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


BASE = """
name: s
data: {kind: adni, root: somewhere}
methods: [{name: dropout_baseline}]
"""


def test_default_study_resolves_presets_and_profile() -> None:
    cfg = load_study(REPO / "studies" / "adni_mci.yaml")
    assert cfg.training.epochs == 40  # from robustmm/presets/training/cpu.yaml
    assert [s.kind for s in cfg.evaluation.scenarios] == ["natural", "modality_rate", "all_subsets"]
    full = load_study(REPO / "studies" / "adni_mci.yaml", profile="full")
    assert tuple(full.data.volume_shape) == (96, 128, 96)
    assert full.model.volume.channels[-1] == 256



@pytest.mark.parametrize("study", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_study_and_profile_validates(study: Path) -> None:
    profiles = yaml.safe_load(study.read_text()).get("profiles") or {}
    for profile in [None, *profiles]:
        cfg = load_study(study, profile=profile)
        validate_method_options(cfg)
        assert cfg.methods, f"{study.name} (profile {profile}) lists no method"

def test_overrides_name_list_items_by_method_id(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("methods: [{name: dropout_baseline}]", """methods:
  - {name: complete_only}
  - {name: dropout_baseline}
  - {name: dropout_baseline, id: zero_fill}
  - {name: dispro}
"""))
    cfg = load_study(p, ["methods.dispro.unipro_epochs=1", "methods.zero_fill.fill=zero", "methods.0.fill=mean"])
    assert [m.options for m in cfg.methods] == [{"fill": "mean"}, {}, {"fill": "zero"}, {"unipro_epochs": 1}]
    # a name that is not an id: the method with an id is named by its id (its index is suggested)
    one = write(tmp_path, BASE.replace("methods: [{name: dropout_baseline}]",
                                       "methods: [{name: complete_only}, {name: dispro, id: d}]"))
    msg = str(pytest.raises(ConfigError, load_study, one, ["methods.dispro.unipro_epochs=1"]).value)
    assert msg.startswith("--set methods.dispro.unipro_epochs: 'dispro' is neither an index (0-1) nor an id")
    assert "ids: ['complete_only', 'd']" in msg and "the item named 'dispro' is index 1 (id 'd')" in msg
    twice = write(tmp_path, BASE.replace("methods: [{name: dropout_baseline}]",
                                         "methods: [{name: dispro}, {name: dispro}]"))
    msg = str(pytest.raises(ConfigError, load_study, twice, ["methods.dispro.unipro_epochs=1"]).value)
    assert "2 items have id 'dispro'; name one by its index ([0, 1])" in msg


def test_misspelt_key_names_path_and_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "training: {epoch: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_study(p)
    assert "training.epoch" in str(err.value) and "did you mean 'epochs'" in str(err.value)


def test_unknown_top_level_and_nested_scenario_key(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "trainng: {}\nevaluation: {scenarios: [{kind: modality_rate, modality: pet, rats: [0.1]}]}\n")
    msg = str(pytest.raises(ConfigError, load_study, p).value)
    assert "'trainng'; did you mean 'training'" in msg
    assert "evaluation.scenarios.0.rats" in msg and "'rates'" in msg


def test_a_run_folders_config_loads_as_its_study_and_its_run_record_holds_no_settings(tmp_path: Path) -> None:
    # a run (or sweep trial) folder's config.yaml is the resolved study plus a run: record; it was refused
    # as an unknown key, so a trial could not be trained again with robustmm run TRIAL/config.yaml
    from robustmm.config import to_plain
    from robustmm.report.rundir import write_config

    study = load_study(write(tmp_path, BASE))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(run_dir, to_plain(study), {"seed": 0, "device": "cpu", "threads": {"count": 1},
                                           "environment": {"python": "3"}, "final_test_of_trial": 7})
    assert to_plain(load_study(run_dir / "config.yaml")) == to_plain(study)
    # only what robustmm records: a setting put under run: would otherwise be silently ignored
    for record, named in (("run: {seed: 0, epochs: 3}", "unknown key 'run.epochs'"), ("run: 3", "(got int)"),
                          ("run:", "(got NoneType)")):
        msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE + record + "\n")).value)
        assert msg.startswith(f"{tmp_path / 'study.yaml'}: ") and named in msg and "'seed', 'device'" in msg
    # and nowhere else: run: in a preset, or made by --set, is still an unknown key
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("run: {seed: 0}\n")
    (tmp_path / "studies").mkdir()  # a project's presets are found in configs/ next to its studies/
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path / "studies", "include: [mine]\n" + BASE)).value)
    assert "unknown key 'run'" in msg
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE), ["run.seed=1"]).value)
    assert "unknown key 'run'" in msg and "(from the command line: run.seed=1)" in msg
    with pytest.raises(ValueError, match="not in robustmm.config.loader.RUN_RECORD_FIELDS"):
        write_config(run_dir, to_plain(study), {"seed": 0, "note": "a field load_study would refuse"})


def test_a_run_record_written_by_an_older_version_still_loads(tmp_path: Path) -> None:
    # versions before 89c6e53 wrote run.synthetic; such a run folder's config.yaml was refused with
    # "unknown key 'run.synthetic'", so it could neither be run again nor resumed
    from robustmm.config import to_plain

    study = to_plain(load_study(write(tmp_path, BASE)))
    old = write(tmp_path, BASE + "run: {seed: 0, device: cpu, synthetic: true, environment: {python: '3'}}\n")
    assert to_plain(load_study(old)) == study


def test_a_misspelt_or_missing_kind_is_named_with_the_kinds_there_are(tmp_path: Path) -> None:
    # pydantic's own text ("Input tag 'adnii' found using 'kind' does not match ...") suggested nothing
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE.replace("kind: adni", "kind: adnii"))).value)
    assert "'data.kind': unknown kind 'adnii'; did you mean 'adni'? (kinds: adni, table, tcga_porpoise" in msg
    p = write(tmp_path, BASE + "evaluation: {scenarios: [{kind: natural}, {kind: modality_rat, modality: pet}]}\n")
    assert "'evaluation.scenarios.1.kind': unknown kind 'modality_rat'; did you mean 'modality_rate'?" in str(
        pytest.raises(ConfigError, load_study, p).value)
    p = write(tmp_path, BASE + "evaluation: {scenarios: [{rate: 0.5}]}\n")
    assert "'evaluation.scenarios.0' needs a 'kind' key (one of: natural, subset, all_subsets," in str(
        pytest.raises(ConfigError, load_study, p).value)


def test_a_check_of_the_whole_study_reads_as_one_sentence(tmp_path: Path) -> None:
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE),
                            ["evaluation.compare_to=dropout_baselin"]).value)
    # was "  - '': Value error, evaluation.compare_to ... (got a mapping)"
    assert msg.splitlines()[1] == ("  - evaluation.compare_to 'dropout_baselin' is not a method id of this study "
                                   "(['dropout_baseline']); use one of them, 'auto' or null")
    # and a check of one key gives its message without pydantic's "Value error, " in front
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE), ["seeds=0-a"]).value)
    assert msg.splitlines()[1] == ("  - 'seeds': cannot read seeds '0-a': write a list like 0,2,5 or a range like 0-4 "
                                   "(got '0-a') (from the command line: seeds=0-a)")


def test_no_far_fetched_key_suggestion_and_a_profile_typo_is_suggested(tmp_path: Path) -> None:
    # 'rate' is no key of a natural scenario; 'name' (half the letters) was offered as the spelling meant
    p = write(tmp_path, BASE + "evaluation: {scenarios: [{kind: natural}]}\n")
    msg = str(pytest.raises(ConfigError, load_study, p, ["evaluation.scenarios.0.rate=0.5"]).value)
    assert "unknown key 'evaluation.scenarios.0.rate'; valid keys here: ['kind', 'name']" in msg
    p = write(tmp_path, BASE + "profiles: {full: {training: {epochs: 9}}, quick: {}}\n")
    msg = str(pytest.raises(ConfigError, load_study, p, None, "ful").value)
    assert msg == f"{p}: profile 'ful' is not defined; did you mean 'full'? (profiles: ['full', 'quick'])"


def test_a_section_written_as_one_word_is_shown_as_a_mapping(tmp_path: Path) -> None:
    # methods: [dropout_baseline] was answered "Input should be a valid dictionary or instance of MethodConfig"
    p = write(tmp_path, BASE.replace("[{name: dropout_baseline}]", "[dropout_baseline]")
              + "evaluation: {scenarios: [natural]}\n")
    assert str(pytest.raises(ConfigError, load_study, p).value).splitlines()[1:] == [
        "  - 'methods.0' is a mapping of keys, not a single word; write {name: dropout_baseline}",
        "  - 'evaluation.scenarios.0' is a mapping of keys, not a single word; write {kind: natural}"]


def test_a_problem_a_profile_brings_names_the_profile(tmp_path: Path) -> None:
    # "unknown key 'trainig'" pointed at the study's top level, where the file has no such key
    p = write(tmp_path, BASE + "profiles: {quick: {trainig: {epochs: 1}}, slow: {training: {epochs: 0}}}\n")
    msg = str(pytest.raises(ConfigError, load_study, p, None, "quick").value)
    assert msg.endswith("unknown key 'trainig'; did you mean 'training'? (from the command line: --profile quick)")
    msg = str(pytest.raises(ConfigError, load_study, p, None, "slow").value)
    assert msg.endswith("'training.epochs': Input should be greater than or equal to 1 (got 0) (from the command "
                        "line: --profile slow)")
    # a --set of the same key comes later and is the one named
    msg = str(pytest.raises(ConfigError, load_study, p, ["training.epochs=-1"], "slow").value)
    assert msg.endswith("(got -1) (from the command line: training.epochs=-1)")


@pytest.mark.parametrize("key", ["training..epochs", "training.epochs.", ".seed"])
def test_an_override_key_path_with_an_empty_part_is_refused(tmp_path: Path, key: str) -> None:
    # 'training..epochs=3' was read as a key '' inside training: "unknown key 'training.'"
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE), [f"{key}=3"]).value)
    assert msg == (f"--set '{key}=3': the key path '{key}' has an empty part (two dots in a row, or a dot at an end); "
                   "write it like training.epochs")


@pytest.mark.parametrize("text, profile, message", [
    ("include: 3\n", None, "'include' must be a preset name or a list of them, e.g. include: [model/small3d"),
    ("include: [{training: cpu}]\n", None, "'include' must be a preset name or a list of them"),
    ("profiles: [full]\n", None, "'profiles' must map profile names to settings, e.g. profiles: {full: {training: "
                                  "{epochs: 120}}} (got list)"),
    ("profiles: {full: [1]}\n", "full", "profile 'full' must be a mapping of the settings it changes"),
])
def test_include_and_profiles_of_the_wrong_type_are_named(tmp_path: Path, text: str, profile: str | None,
                                                          message: str, capsys) -> None:
    # each was a TypeError or AttributeError traceback
    p = write(tmp_path, BASE + text)
    assert main(["run", str(p), *(["--profile", profile] if profile else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"robustmm: error: {p}: {message}") and "Traceback" not in err


def test_an_empty_profile_changes_nothing(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "profiles: {quick: null, full: {training: {epochs: 9}}}\n")
    assert load_study(p, profile="quick") == load_study(p)


def test_wrong_type_and_missing_required_key(tmp_path: Path) -> None:
    p = write(tmp_path, "name: s\ndata: {kind: adni}\nmethods: [{name: a}]\ntraining: {epochs: many}\n")
    msg = str(pytest.raises(ConfigError, load_study, p).value)
    assert "missing required key 'data.root'" in msg
    assert "'training.epochs'" in msg and "many" in msg


def test_missing_study_file_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_study(tmp_path / "nope.yaml")
    p = write(tmp_path, "include: [training/cpuu]\n" + BASE)
    with pytest.raises(ConfigError, match="did you mean 'training/cpu'"):
        load_study(p)


def test_overrides(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    cfg = load_study(p, ["training.epochs=7", "methods.0.fill=mean", "data.volume_shape=[8, 8, 8]"])
    assert cfg.training.epochs == 7 and cfg.methods[0].options == {"fill": "mean"}
    assert tuple(cfg.data.volume_shape) == (8, 8, 8)
    with pytest.raises(ConfigError, match="key.path=value"):
        load_study(p, ["training.epochs"])
    with pytest.raises(ConfigError, match="index 3 is past the end of a list of 1 items"):
        load_study(p, ["methods.3.fill=mean"])
    # a problem an override made is said to come from the command line, not from the file
    msg = str(pytest.raises(ConfigError, load_study, p, ["training.epoch=3"]).value)
    assert "unknown key 'training.epoch'" in msg and "(from the command line: training.epoch=3)" in msg
    msg = str(pytest.raises(ConfigError, load_study, p, ["data.volume_shape=[8, 8]"]).value)
    assert "'data.volume_shape' has too few values: item 3 is missing (from the command line" in msg
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE + "training: {epoch: 3}\n"),
                            ["training.epochs=2"]).value)
    assert "unknown key 'training.epoch'" in msg and "command line" not in msg  # this one is in the file
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path, BASE.replace("kind: adni", "kind: adnii")),
                            ["data.root=/elsewhere"]).value)
    assert "command line" not in msg  # the kind is the file's; an override below it did not cause it


def test_method_options_are_validated_before_any_work(tmp_path: Path) -> None:
    cfg = load_study(write(tmp_path, BASE), ["methods.0.fil=mean"])
    msg = str(pytest.raises(ConfigError, validate_method_options, cfg).value)
    assert "methods.0.fil" in msg and "'fill'" in msg
    cfg = load_study(write(tmp_path, BASE.replace("dropout_baseline", "dropout_baselin")))
    with pytest.raises(ConfigError, match="did you mean 'dropout_baseline'"):
        validate_method_options(cfg)


@pytest.mark.parametrize("study", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_an_unknown_method_names_the_study_file_the_key_and_the_override(study: Path) -> None:
    # the message said only "unknown method 'dropout_baselin'": neither the file nor methods.0.name
    cfg = load_study(study, ["methods.0.name=dropout_baselin"])
    msg = str(pytest.raises(ConfigError, validate_method_options, cfg).value)
    assert msg.startswith(f"{study}: 'methods.0.name': unknown method 'dropout_baselin'; did you mean "
                          "'dropout_baseline'?")
    assert msg.endswith("(from the command line: methods.0.name=dropout_baselin)")


def test_checks_after_reading_name_the_study_file_and_an_override_by_method_id(tmp_path: Path) -> None:
    from robustmm.runguard import check_before_data

    p = write(tmp_path, BASE)
    cfg = load_study(p, ["methods.dropout_baseline.fil=zero"])  # the method named by its id
    msg = str(pytest.raises(ConfigError, validate_method_options, cfg).value)
    assert msg.startswith(f"{p}: method 'dropout_baseline': invalid configuration")
    assert ("unknown key 'methods.0.fil'; did you mean 'fill'? (from the command line: "
            "methods.dropout_baseline.fil=zero)") in msg
    mosi = REPO / "studies" / "mosi_rmfm.yaml"
    msg = str(pytest.raises(ConfigError, check_before_data, load_study(mosi, ["data.options.fil=x"])).value)
    assert msg.startswith(f"{mosi}: data (kind mmsa): invalid configuration")
    assert "unknown key 'data.options.fil'; did you mean 'file'? (from the command line: data.options.fil=x)" in msg
    adni = REPO / "studies" / "adni_mci.yaml"
    msg = str(pytest.raises(ConfigError, check_before_data,
                            load_study(adni, ["evaluation.scenarios.1.modality=pett"])).value)
    assert msg.startswith(f"{adni}: evaluation.scenarios.1 (from the command line: "
                          "evaluation.scenarios.1.modality=pett): scenarios name modalities ['pett']")
    assert msg.endswith("did you mean 'pet' for 'pett'?")
    # an unknown key that only an override below it made is the command line's, not the file's
    msg = str(pytest.raises(ConfigError, load_study, p, ["trainng.epochs=3"]).value)
    assert "unknown key 'trainng'; did you mean 'training'? (from the command line: trainng.epochs=3)" in msg


def test_cli_reports_user_errors_without_traceback(tmp_path: Path, capsys) -> None:
    p = write(tmp_path, BASE + "training: {epoch: 3}\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "training.epoch" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2


def test_the_removed_visit_column_key_says_what_to_do(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("name: x\ndata: {kind: adni, root: nowhere, visit_column: VISCODE}\nmethods: [{name: complete_only}]\n")
    with pytest.raises(ConfigError, match=r"data\.visit_column is no longer a key: visits are ordered by "
                                          r"data\.months_column \(M\); delete the line"):
        load_study(study)


@pytest.mark.parametrize("study", ["adni_mci.yaml", "brats_missing.yaml"])
def test_a_negative_synthetic_seed_is_refused_when_the_study_is_read(study: str) -> None:
    from robustmm.data.registry import check_data_options

    # numpy's generators refuse it: the run stopped with a ValueError traceback after making its folder
    with pytest.raises(ConfigError, match="seed"):  # ADNI's by the schema, BraTS's before the run folder
        check_data_options(load_study(REPO / "studies" / study, ["data.synthetic.seed=-1"]).data)


def test_a_word_yaml_reads_as_a_boolean_or_date_is_refused_with_how_to_quote_it(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted no/yes/on/off as a boolean and 2026-01-01 as a date; the error said only
    # "Input should be a valid string (got False)", which does not tell the user what went wrong
    study = write(tmp_path, BASE)
    for given, read_as in (("name=no", "the boolean False"), ("name=2026-01-01", "a date")):
        msg = str(pytest.raises(ConfigError, load_study, study, [given]).value)
        value = given.split("=")[1]
        assert msg.endswith(f"(from the command line: {given}); YAML reads {value} as {read_as}: quote it, "
                            f"--set \"name='{value}'\"")
    assert load_study(study, ["name='no'"]).name == "no"
    msg = str(pytest.raises(ConfigError, load_study, study, ["output_dir=2026-01-01"]).value)  # a path is text too
    assert msg.endswith("YAML reads 2026-01-01 as a date: quote it, --set \"output_dir='2026-01-01'\"")
    (tmp_path / "off").mkdir()
    off = write(tmp_path / "off", BASE.replace("name: s", "name: off"))
    msg = str(pytest.raises(ConfigError, load_study, off).value)
    assert msg.endswith("YAML reads an unquoted no/yes/on/off as a boolean and 2026-01-01 as a date: quote the "
                        "value, e.g. name: 'no'")
    msg = str(pytest.raises(ConfigError, load_study, study, ["data={kind: adni, root: on}"]).value)  # a section
    assert msg.endswith("(from the command line: data={kind: adni, root: on}); YAML reads an unquoted no/yes/on/off "
                        "as a boolean and 2026-01-01 as a date: quote the value, e.g. name: 'no'")
    # no advice where the quoted word would fail as well
    for given in ("training.epochs=no", "training.device=on"):
        assert "quote" not in str(pytest.raises(ConfigError, load_study, study, [given]).value)


def test_a_boolean_is_refused_where_a_number_is_wanted(tmp_path: Path) -> None:
    # pydantic reads True/False as 1/0 and YAML 1.1 an unquoted yes/no/on/off as a boolean: --set
    # training.epochs=yes trained one epoch, seed=no ran seed 0
    study = write(tmp_path, BASE)
    for key, value, read_as in (("training.epochs", "yes", True), ("seed", "no", False), ("training.lr", "off", False)):
        msg = str(pytest.raises(ConfigError, load_study, study, [f"{key}={value}"]).value)
        assert msg.endswith(f"'{key}': a boolean where a number is wanted (got {read_as}) (from the command line: "
                            f"{key}={value}); YAML reads {value} as the boolean {read_as}: give {key} a number")
    (tmp_path / "on").mkdir()
    msg = str(pytest.raises(ConfigError, load_study, write(tmp_path / "on", BASE + "training: {epochs: on}\n")).value)
    assert msg.endswith("'training.epochs': a boolean where a number is wanted (got True); YAML reads an unquoted "
                        "no/yes/on/off as a boolean: give a number")
    msg = str(pytest.raises(ConfigError, load_study, study, ["model.volume.channels=[8, yes, 32]"]).value)
    assert "'model.volume.channels.1': a boolean where a number is wanted (got True)" in msg
    # every config model: a method's options, a data adapter's options
    cfg = load_study(study, ["methods.0.keep_complete=no"])
    msg = str(pytest.raises(ConfigError, validate_method_options, cfg).value)
    assert "'methods.0.keep_complete': a boolean where a number is wanted (got False)" in msg
    from robustmm.data.registry import check_data_options

    mosi = load_study(REPO / "studies" / "mosi_rmfm.yaml", ["data.options.cls_id=yes"])
    msg = str(pytest.raises(ConfigError, check_data_options, mosi.data).value)
    assert "'data.options.cls_id': a boolean where a number is wanted (got True)" in msg


def test_numbers_and_booleans_where_they_are_wanted_are_still_read() -> None:
    study = REPO / "studies" / "adni_mci.yaml"
    # YAML 1.1 reads 1e-3 (no dot) as a string; an int is a float; a boolean is one where one is wanted
    cfg = load_study(study, ["training.lr=1e-3", "training.grad_clip=2", "training.amp=no", "split.fold=1",
                             "split.folds=3"])
    assert (cfg.training.lr, cfg.training.grad_clip, cfg.training.amp, cfg.split.fold) == (0.001, 2.0, False, 1)


@pytest.mark.parametrize(("override", "expected"), [
    ("split.fold=0.5", "'split.fold' takes a whole number or 'all' (got 0.5)"),
    ("split.fold=abc", "'split.fold' takes a whole number or 'all' (got 'abc')"),
    ("training.selection.scenarios=foo", "'training.selection.scenarios' takes 'natural', 'evaluation' or a list of "
     "mappings with a 'kind' key (natural, subset, "),
    ("evaluation.scenarios=[3]", "'evaluation.scenarios.0' takes a mapping with a 'kind' key (natural, subset, "),
    # the same words for a container given a single value (pydantic: "Input should be a valid tuple")
    ("data.volume_shape=32", "'data.volume_shape' takes a list of 3 whole numbers (got 32)"),
    ("data.clinical_columns=AGE", "'data.clinical_columns' takes a list of text values (got 'AGE')"),
])
def test_a_value_that_fits_no_member_of_a_union_says_what_the_key_takes(tmp_path: Path, override: str,
                                                                       expected: str) -> None:
    # pydantic reports one error per member of the union, named in its own terms ('split.fold.int',
    # "split.fold.literal['all']", 'list[tagged-union[NaturalScenario,...]]'): now one line in the user's terms
    with pytest.raises(ConfigError) as err:
        load_study(write(tmp_path, BASE), [override])
    text = str(err.value)
    assert expected in text and f"(from the command line: {override})" in text
    assert "literal[" not in text and "tagged-union" not in text and "Input should" not in text
    assert len(text.splitlines()) == 2  # one problem, one line


def test_a_value_of_one_members_form_gets_only_that_members_errors(tmp_path: Path) -> None:
    # a list of scenarios with a bad one: the list member's error at the scenario's own key path, without
    # the 'natural'/'evaluation' member's "Input should be 'natural' or 'evaluation'"
    with pytest.raises(ConfigError) as err:
        load_study(write(tmp_path, BASE), ["training.selection.scenarios=[{kind: rmfx}]"])
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith("  - 'training.selection.scenarios.0.kind': unknown kind 'rmfx'; "
                                                   "did you mean 'rmfm'?")
    # a method's options go through the same formatting: MMANet's spatial_grid is int | list[int]
    cfg = load_study(write(tmp_path, BASE), ["methods=[{name: mmanet, spatial_grid: [2, x]}]"])
    with pytest.raises(ConfigError) as err:
        validate_method_options(cfg)
    assert "'methods.0.spatial_grid.1': Input should be a valid integer" in str(err.value)
    assert "list[int]" not in str(err.value)
    cfg = load_study(write(tmp_path, BASE), ["methods=[{name: mmanet, spatial_grid: 2.5}]"])
    with pytest.raises(ConfigError, match=r"'methods.0.spatial_grid' takes a whole number or a list of whole numbers "
                                          r"\(got 2.5\)"):
        validate_method_options(cfg)


def test_a_fold_other_than_0_without_folds_is_refused(tmp_path: Path) -> None:
    # split.fold=3 without split.folds ran the single split as if fold were 0; -1 was told "use 0..0"
    for fold in ("3", "-1"):
        with pytest.raises(ConfigError, match=rf"'split': fold {fold} needs 'folds' \(e\.g\. folds: 5\); without it"):
            load_study(write(tmp_path, BASE), [f"split.fold={fold}"])
    with pytest.raises(ConfigError, match=r"fold -1 is out of range for folds=5 \(use 0\.\.4\)"):
        load_study(write(tmp_path, BASE), ["split.fold=-1", "split.folds=5"])
    assert load_study(write(tmp_path, BASE), ["split.fold=0"]).split.fold == 0

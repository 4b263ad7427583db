"""Spec loading: the shipped specs load, broken ones fail naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from loopline.adapters.specs import check_model_name, get_spec, load_spec, load_specs, spec_paths
from loopline.core.errors import SpecError
from loopline.core.spec import spec_from_mapping

CHURN = Path(__file__).resolve().parents[3] / "include" / "specs" / "churn.yaml"


def write_spec(folder: Path, name: str, change) -> Path:
    """Copy churn.yaml as ``name``.yaml with ``change(dict)`` applied."""
    data = yaml.safe_load(CHURN.read_text())
    data["name"] = name
    change(data)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_churn_spec_is_typed():
    spec = get_spec("churn")
    assert spec.entity_id.column == "customer_id"
    assert spec.target.task == "binary_classification"
    assert 15 <= len(spec.features) <= 30
    tenure = spec.feature("tenure_months")
    assert (tenure.type, tenure.nullable, tenure.min, tenure.max) == ("numeric", False, 0, 120)
    assert spec.feature("plan").categories == ["basic", "plus", "premium", "family"]
    assert spec.required_columns[:2] == ["customer_id", "snapshot_ts"]
    assert spec.gate is not None and spec.gate.champion_margin > 0


def test_every_shipped_spec_loads():
    specs, errors = load_specs(CHURN.parent)
    assert errors == []
    assert {s.name for s in specs} == {p.stem for p in spec_paths(CHURN.parent)}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d["features"][0].update(type="number"), "features.0.type", "numeric"),
        (lambda d: d["features"][1].update(min=10, max=1), "features.1", "min 10.0 > max 1.0"),
        (lambda d: d.update(slices=["nope"]), "<root>", "nope"),
        (lambda d: d.update(schedul={"cron": "x"}), "schedul", "Extra inputs"),
        (lambda d: d.pop("entity_id"), "entity_id", "Field required"),
        (lambda d: d["target"].update(task="ranking"), "target.task", "binary_classification"),
        (
            lambda d: d.update(hooks={"after_ingest": ["no_colon"]}),
            "hooks.after_ingest",
            "import path",
        ),
        (lambda d: d["features"].append(dict(d["features"][0])), "<root>", "repeat"),
        (lambda d: d["features"][15].update(min=0), "features.15", "categorical"),
        (lambda d: d["features"][0].update(name=" x"), "features.0.name", "spaces"),
        (lambda d: d["features"][0].update(name="a\tb"), "features.0.name", "control"),
        (lambda d: d["training"].update(min_days=50), "training", "never hold enough"),
        (lambda d: d["drift"].update(persistence_k=4), "drift", "could never persist"),
        (lambda d: d["metric"].update(primary="rmse"), "<root>", "not a binary_classification"),
        (lambda d: d["gate"].update(guardrails=["mae"]), "<root>", "gate.guardrails"),
        (
            lambda d: d["validation"].update(max_bad_row_share=2),
            "validation.max_bad_row_share",
            "1",
        ),
    ],
)
def test_broken_spec_names_file_and_field(tmp_path, change, field, words):
    path = write_spec(tmp_path, "broken", change)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: field '{field}'"), message
    assert words in message
    assert info.value.field == field


def test_name_must_match_file(tmp_path):
    path = write_spec(tmp_path, "alpha", lambda d: None)
    path.rename(tmp_path / "beta.yaml")
    with pytest.raises(SpecError, match="'alpha' must match the file name 'beta'"):
        load_spec(tmp_path / "beta.yaml")


def test_unreadable_yaml_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: field '<file>': cannot read YAML"):
        load_spec(path)


def test_a_broken_spec_does_not_hide_the_others(tmp_path):
    write_spec(tmp_path, "good", lambda d: None)
    write_spec(tmp_path, "bad", lambda d: d["features"][0].update(type="number"))
    specs, errors = load_specs(tmp_path)
    assert [s.name for s in specs] == ["good"]
    assert [e.path.name for e in errors] == ["bad.yaml"]


def test_gate_is_optional_and_absent_means_none(tmp_path):
    spec = load_spec(write_spec(tmp_path, "nogate", lambda d: d.pop("gate")))
    assert spec.gate is None


def test_regression_spec_with_integer_ids_and_open_categories(tmp_path):
    def change(d):
        d["target"] = {"column": "spend", "task": "regression"}
        d["metric"].pop("primary")
        d["entity_id"] = {"column": "account", "dtype": "integer"}
        d["features"][15].pop("categories")

    spec = load_spec(write_spec(tmp_path, "spend", change))
    assert spec.target.task == "regression"
    assert spec.entity_id.dtype == "integer"
    assert spec.features[15].categories is None


def test_defaults_follow_the_task(tmp_path):
    def regression(d):
        d["target"] = {"column": "price", "task": "regression"}
        d.pop("metric")
        d["gate"].pop("guardrails", None)

    spec = load_spec(write_spec(tmp_path, "prices", regression))
    assert (spec.primary_metric, spec.guardrails) == ("rmse", ["mae"])
    churn = get_spec("churn")
    assert (churn.primary_metric, churn.guardrails) == ("roc_auc", ["log_loss", "brier"])


def test_feature_names_with_quotes_and_percent_are_fine(tmp_path):
    """The lake keeps them as Parquet column names: no SQL identifier is built from a spec."""

    def odd(d):
        d["features"][0]["name"] = 'tenure "months"'
        d["features"][1]["name"] = "charges %"

    spec = load_spec(write_spec(tmp_path, "odd", odd))
    assert spec.feature_names[:2] == ['tenure "months"', "charges %"]


@pytest.mark.parametrize("name", ["../../x", "my model", "x; drop table", "Churn", ""])
def test_model_names_from_the_cli_are_checked_before_they_become_paths(name):
    with pytest.raises(SpecError, match="is not a model name"):
        check_model_name(name)
    with pytest.raises(SpecError, match="is not a model name"):
        get_spec(name)


@pytest.mark.parametrize(
    "name", ["entity_id", "event_ts", "label", "partition_date", "_run_id", "_source_file"]
)
def test_common_column_names_are_anyones_to_use(name):
    """Names the lake once used for its own columns are a user's now (they were refused)."""
    raw = yaml.safe_load(CHURN.read_text())
    raw["features"][0]["name"] = name
    spec = spec_from_mapping(raw, CHURN)
    assert spec.feature_names[0] == name


def test_a_spec_name_in_nfd_matches_the_file_in_nfc():
    import unicodedata

    raw = yaml.safe_load(CHURN.read_text())
    raw["features"][0]["name"] = unicodedata.normalize("NFD", "größe_月")
    spec = spec_from_mapping(raw, CHURN)
    assert spec.feature_names[0] == unicodedata.normalize("NFC", "größe_月")

"""Reading spec files from the specs folder (``LOOPLINE_SPECS_DIR``, default include/specs).

A broken spec raises :class:`SpecError` naming the file and the field, so that the DAG factory
can report it without breaking the DAGs of the other models, and the CLI can print it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from loopline.adapters import settings
from loopline.core.errors import SpecError, UnknownModelError
from loopline.core.spec import NAME_PATTERN, ModelSpec, spec_from_mapping

SUFFIXES = (".yaml", ".yml")


def load_spec(path: Path | str) -> ModelSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(path, "<file>", f"cannot read YAML: {exc}") from exc
    return spec_from_mapping(raw, path)


def spec_paths(directory: Path | None = None) -> list[Path]:
    directory = directory or settings.specs_dir()
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in SUFFIXES)


def load_specs(directory: Path | None = None) -> tuple[list[ModelSpec], list[SpecError]]:
    """Every spec in the folder; broken ones are returned as errors, not raised."""
    specs, errors = [], []
    for path in spec_paths(directory):
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors


def check_model_name(name: str) -> str:
    """A model name as the CLI receives it: refused unless it is a valid spec name, so that it
    can never become a path outside the state folder (``../x``) or an odd DAG id."""
    if not re.match(NAME_PATTERN, name):
        raise SpecError(
            settings.specs_dir() / f"{name}.yaml",
            "name",
            f"'{name}' is not a model name (lower-case letters, digits and _, starting with a "
            "letter, at most 40)",
        )
    return name


def get_spec(name: str, directory: Path | None = None) -> ModelSpec:
    directory = directory or settings.specs_dir()
    check_model_name(name)
    for suffix in SUFFIXES:
        path = directory / f"{name}{suffix}"
        if path.exists():
            return load_spec(path)
    known = ", ".join(p.stem for p in spec_paths(directory)) or "none"
    raise UnknownModelError(
        f"no model '{name}': no spec file {name}.yaml in {directory} (models there: {known})",
        hint="check the name, or point LOOPLINE_SPECS_DIR at the folder that holds its spec",
    )

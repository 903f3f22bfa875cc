"""Settings declared once (flowfeat_core.settings): the shipped YAML files and the docs tables
must agree with the declarations, and the derived ROS descriptors and command-line options carry
what was declared."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from flowfeat_core.continual.parameters import LoopParameters
from flowfeat_core.settings import (
    add_arguments,
    check_ranges,
    declared,
    from_arguments,
    markdown_table,
    setting,
    yaml_problems,
)
from flowfeat_ros.parameter_declarations import descriptor
from flowfeat_ros.settings_docs import TABLES, documented_tables, regenerate, stale_documents

REPO = Path(__file__).resolve().parents[1]
#: config file -> (node name in its key, declaration)
CONFIGS = {"perception.yaml": ("perception", TABLES["PerceptionSettings"]),
           "recorder.yaml": ("recorder", TABLES["RecorderSettings"]),
           "trainer.yaml": ("trainer", TABLES["TrainerSettings"])}


def yaml_parameters(path: Path, node: str) -> dict:
    return yaml.safe_load(path.read_text())[f"/**/{node}"]["ros__parameters"]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_shipped_yaml_files_agree_with_the_declarations(config):
    node, declaration = CONFIGS[config]
    assert yaml_problems(declaration, yaml_parameters(REPO / "config" / config, node)) == []


def test_a_hand_edited_default_in_a_yaml_file_is_caught(tmp_path):
    edited = tmp_path / "perception.yaml"
    shutil.copy(REPO / "config" / "perception.yaml", edited)
    edited.write_text(edited.read_text().replace("max_rate_hz: 0.0", "max_rate_hz: 5.0"))
    problems = yaml_problems(TABLES["PerceptionSettings"], yaml_parameters(edited, "perception"))
    assert problems == ["max_rate_hz: 5.0 but the declaration says 0.0"]
    extra = {**yaml_parameters(REPO / "config" / "recorder.yaml", "recorder"), "qos": "reliable"}
    del extra["qos_depth"]
    assert sorted(yaml_problems(TABLES["RecorderSettings"], extra)) == [
        "qos: not a declared setting", "qos_depth: declared but missing"]


def test_every_declaration_has_an_up_to_date_table_in_the_docs():
    assert documented_tables() == set(TABLES)
    assert stale_documents() == [], "run: python -m flowfeat_ros.settings_docs"


def test_a_hand_edited_docs_table_is_caught():
    text = (REPO / "docs" / "recording.md").read_text()
    edited = text.replace("| `max_rate_hz` | float | `5.0` |", "| `max_rate_hz` | float | `6.0` |")
    assert edited != text and regenerate(edited) == text


@dataclass(frozen=True)
class Example:
    """One setting of each kind."""

    name: str = setting("robot", "a name", flag="--robot-name")
    count: int = setting(3, "a count", low=1, high=10, read_only=True)
    rate: float = setting(2.5, "a rate", low=0.0, high=100.0)
    mode: str = setting("fast", "a mode", choices=("fast", "slow"))
    enabled: bool = setting(True, "a switch")
    cameras: tuple[str, ...] = setting((), "names")


def test_derived_ros_descriptors_carry_ranges_choices_and_read_only():
    items = {item.name: item for item in declared(Example)}
    count, rate, mode = (descriptor(items[n]) for n in ("count", "rate", "mode"))
    assert count.read_only and not rate.read_only
    assert (count.integer_range[0].from_value, count.integer_range[0].to_value) == (1, 10)
    assert not count.floating_point_range
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) == (
        0.0, 100.0)
    assert mode.additional_constraints == "one of: fast, slow" and mode.description == "a mode"


def test_derived_command_line_round_trips_and_checks_ranges():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Example)
    assert from_arguments(Example, parser.parse_args([])) == Example()
    given = from_arguments(Example, parser.parse_args(
        ["--robot-name", "r2", "--count", "7", "--enabled", "false", "--cameras", "a", "b"]))
    assert given == Example(name="r2", count=7, enabled=False, cameras=("a", "b"))
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])  # argparse knows the choices
    with pytest.raises(ValueError, match=r"count must be in \[1, 10\], got 11"):
        from_arguments(Example, parser.parse_args(["--count", "11"]))
    with pytest.raises(ValueError, match="mode must be one of"):
        check_ranges(Example(mode="medium"))
    assert "| `mode` | str | `\"fast\"` | fast \\| slow | yes | a mode |" in markdown_table(Example)


def test_unsupported_setting_types_are_refused_at_declaration():
    @dataclass(frozen=True)
    class Bad:
        where: Path = setting(Path("."), "a path object")  # noqa: RUF009 (the point of the test)

    with pytest.raises(TypeError, match="settings are bool, int, float, str"):
        declared(Bad)


def test_flowfeat_round_options_are_the_loop_declarations():
    parser = argparse.ArgumentParser()
    add_arguments(parser, LoopParameters)
    args = parser.parse_args(["--bags", "b", "--work", "w", "--deployed", "d.safetensors",
                              "--keep", "5", "--recent", "2"])
    params = from_arguments(LoopParameters, args)
    assert (params.bags_dir, params.keep_deployed, params.recent_bags) == ("b", 5, 2)
    settings = params.loop_settings(progress_bar=False)
    assert (settings.keep, settings.limits.recent, settings.round.steps) == (5, 2, 300)
    assert settings.round.thresholds.max_label_free_drop == LoopParameters.max_label_free_drop

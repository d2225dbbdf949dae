"""The config file: where it is, what it may say, precise errors, and edits that keep it intact."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from makestream import config
from makestream.config import default_path, load, locate, parse
from makestream.errors import ConfigError, UsageError

EXAMPLE = """\
# alerting for the shop
[alerts]
renotify_s = 3600

[thresholds]
duration_p95_factor = { value = 2.0, severity = "warning" }
consecutive_failures = { value = 3, severity = "critical" }  # wake someone up
error_rate = { value = 0.3, window_runs = 50, window_s = 3600, min_runs = 10 }
operations_max = 5000
scenario_paused = false

[scenarios.123.thresholds]
duration_max_s = { value = 300, severity = "critical" }
consecutive_failures = { value = 1 }
"""


# --- where --------------------------------------------------------------------------------------


def test_the_path_comes_from_makestream_config_then_xdg_then_home(tmp_path: Path) -> None:
    assert default_path({"MAKESTREAM_CONFIG": "/etc/ms.toml", "XDG_CONFIG_HOME": "/x"}) == Path(
        "/etc/ms.toml"
    )
    assert default_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/makestream/config.toml")
    home = Path.home() / ".config" / "makestream" / "config.toml"
    assert default_path({}) == home
    assert default_path({"XDG_CONFIG_HOME": "relative/dir"}) == home  # XDG: ignore relative


def test_a_missing_file_means_built_in_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path / "none.toml")
    assert not loaded.exists
    assert loaded.thresholds.get("consecutive_failures") is not None
    assert loaded.thresholds.get("duration_max_s") is None


# --- what ---------------------------------------------------------------------------------------


def test_thresholds_merge_defaults_file_and_scenario_field_by_field() -> None:
    thresholds = parse(EXAMPLE)
    assert thresholds.renotify_s == 3600
    general = thresholds.for_scenario(None)
    assert (
        general["consecutive_failures"].value,
        general["consecutive_failures"].severity,
        general["consecutive_failures"].source,
    ) == (3, "critical", "config")
    assert general["error_rate"].params == {"window_runs": 50, "window_s": 3600, "min_runs": 10}
    assert general["operations_max"].active and general["operations_max"].value == 5000
    assert not general["scenario_paused"].active
    assert general["duration_max_s"].active is False
    own = thresholds.for_scenario(123)
    assert (
        own["consecutive_failures"].value,
        own["consecutive_failures"].severity,
        own["consecutive_failures"].source,
    ) == (1, "critical", "scenario")
    assert (own["duration_max_s"].value, own["duration_max_s"].active) == (300, True)
    assert own["queue_max"].source == "default"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[thresholds]\n# about errors\nerror_rate = { value = 2 }\n",
            "cfg.toml:3: thresholds.error_rate.value: must be at most 1 (got 2)",
        ),
        (
            "[thresholds]\nconsecutive_failure = 3\n",
            "cfg.toml:2: thresholds.consecutive_failure: unknown key (did you mean "
            "consecutive_failures?)",
        ),
        (
            '\n[scenarios.5.thresholds]\nqueue_max = { value = 3, severity = "fatal" }\n',
            "cfg.toml:3: scenarios.5.thresholds.queue_max.severity: "
            "must be 'warning' or 'critical' (got 'fatal')",
        ),
        (
            "[scenarios.abc.thresholds]\nqueue_max = 3\n",
            "cfg.toml:1: scenarios.abc: scenario ids are positive numbers, as in "
            "[scenarios.123.thresholds]",
        ),
        ("a = 1\n[thresholds\n", "cfg.toml:2: invalid TOML: a [table] header lacks its closing ]"),
        (
            "[thresholds]\nqueue_max = 10\noperations_max = true\n",
            "cfg.toml:3: thresholds.operations_max: "
            "needs a value to be turned on (e.g. operations_max = 1000)",
        ),
        (
            "[thresholds]\nscenario_paused = 3\n",
            "cfg.toml:2: thresholds.scenario_paused: must be true, false, or a table such as "
            '{ severity = "warning" }',
        ),
        (
            "[thresholds]\nconsecutive_failures = 2.5\n",
            "cfg.toml:2: thresholds.consecutive_failures.value: "
            "expects a whole number (got 2.5)",
        ),
        (
            "[thresholds]\nqueue_max = { value = true }\n",
            "cfg.toml:2: thresholds.queue_max.value: must be a number, not true",
        ),
        (
            "[thresholds]\nerror_rate = { min_runs = 30 }\n",
            "cfg.toml:2: thresholds.error_rate: min_runs must not exceed window_runs",
        ),
        (
            "[thresholds]\nerror_rate = { window = 3 }\n",
            "cfg.toml:2: thresholds.error_rate.window: unknown key (did you mean window_s?)",
        ),
        (
            "[alerts]\n\nrenotify_s = -1\n",
            "cfg.toml:3: alerts.renotify_s: must be at least 0 (got -1)",
        ),
        (
            "thresholds.queue_max = -1\n",
            "cfg.toml:1: thresholds.queue_max.value: must be at least 0 (got -1)",
        ),
        (
            "[scenarios.9]\nthresholds = { stuck_factor = { min_s = -5 } }\n",
            "cfg.toml:2: scenarios.9.thresholds.stuck_factor.min_s: "
            "must be at least 0 (got -5)",
        ),
    ],
)
def test_an_invalid_file_names_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, "cfg.toml")
    assert str(caught.value) == expected
    assert caught.value.exit_code == 2


def test_locate_prefers_the_deepest_key_and_falls_back_to_the_table() -> None:
    text = EXAMPLE
    assert locate(text, ("thresholds", "error_rate", "window_runs")) == 8
    assert locate(text, ("scenarios", "123", "thresholds", "nothing")) == 12
    assert locate(text, ("alerts",)) == 2
    assert locate(text, ("elsewhere",)) is None


def test_several_problems_are_counted_on_the_one_line() -> None:
    with pytest.raises(ConfigError, match=r"\(and 1 more\)$"):
        parse("[thresholds]\nqueue_max = -1\ndlq_growth = -1\n", "cfg.toml")


# --- edits --------------------------------------------------------------------------------------


def test_set_creates_the_file_and_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    config.set_threshold(path, "duration_max_s", "5m", scenario=123, severity="critical")
    assert path.read_text() == (
        "# makestream configuration (see: makestream thresholds --help)\n\n"
        "[scenarios.123.thresholds]\n"
        'duration_max_s = {value = 300, severity = "critical"}\n'
    )
    assert load(path).thresholds.get("duration_max_s", 123) is not None


def test_edits_keep_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXAMPLE)
    config.set_threshold(path, "consecutive_failures", "4")
    config.set_threshold(path, "error_rate.window_runs", "40")
    config.set_threshold(path, "scenario_paused", "on")
    config.set_threshold(path, "queue_max", "50", severity="critical")
    text = path.read_text()
    assert (
        'consecutive_failures = { value = 4, severity = "critical" }  # wake someone up\n' in text
    )
    assert (
        "error_rate = { value = 0.3, window_runs = 40, window_s = 3600, min_runs = 10 }\n" in text
    )
    assert "scenario_paused = true\n" in text
    assert text.startswith("# alerting for the shop\n[alerts]\nrenotify_s = 3600\n")
    assert text.index("[thresholds]") < text.index("[scenarios.123.thresholds]")
    assert text.index("queue_max") < text.index("[scenarios.123.thresholds]")
    assert config.unset_threshold(path, "queue_max")
    assert config.unset_threshold(path, "scenario_paused")
    config.set_threshold(path, "consecutive_failures", "3")
    config.set_threshold(path, "error_rate.window_runs", "50")
    config.set_threshold(path, "scenario_paused", "off")
    # back where it started, byte for byte but for the order of a re-added key
    assert sorted(path.read_text().splitlines()) == sorted(EXAMPLE.splitlines())


def test_setting_a_value_turns_a_disabled_rule_back_on(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[thresholds]\nqueue_max = { value = 5, enabled = false }\n")
    config.set_threshold(path, "queue_max", "7")
    assert path.read_text() == "[thresholds]\nqueue_max = { value = 7 }\n"
    config.set_threshold(path, "queue_max", "off")
    assert load(path).thresholds.get("queue_max") is None
    path.write_text("[thresholds]\nqueue_max = {enabled = false, value = 5}  # why\n")
    config.set_threshold(path, "queue_max", "8", severity="critical")
    assert path.read_text() == (
        '[thresholds]\nqueue_max = {value = 8, severity = "critical"}  # why\n'
    )


def test_unset_of_a_parameter_keeps_the_rest_of_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[thresholds]\nerror_rate = { value = 0.2, window_runs = 9 }\n")
    assert config.unset_threshold(path, "error_rate.window_runs")
    assert path.read_text() == "[thresholds]\nerror_rate = { value = 0.2 }\n"
    assert not config.unset_threshold(path, "error_rate.min_runs")
    with pytest.raises(UsageError, match="error_rate has no parameter 'value'"):
        config.unset_threshold(path, "error_rate.value")


def test_unset_and_reset_tidy_up_empty_scenario_tables(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXAMPLE)
    assert config.unset_threshold(path, "duration_max_s", scenario=123)
    assert not config.unset_threshold(path, "duration_max_s", scenario=123)
    assert config.unset_threshold(path, "consecutive_failures", scenario=123)
    assert "scenarios" not in path.read_text()
    assert config.reset_thresholds(path)
    assert path.read_text() == "# alerting for the shop\n[alerts]\nrenotify_s = 3600\n\n"
    assert not config.reset_thresholds(path)


def test_reset_of_one_scenario_leaves_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXAMPLE + "\n[scenarios.7.thresholds]\nqueue_max = 1\n")
    assert config.reset_thresholds(path, scenario=123)
    thresholds = load(path).thresholds
    assert thresholds.scenarios.keys() == {7}
    assert thresholds.defaults["consecutive_failures"].value == 3


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("nope", "1", "unknown threshold 'nope'; `makestream thresholds` lists them"),
        (
            "queue_mx",
            "1",
            "unknown threshold 'queue_mx' (did you mean queue_max?); `makestream "
            "thresholds` lists them",
        ),
        (
            "error_rate.windows",
            "1",
            "error_rate has no parameter 'windows' (its parameters: "
            "window_runs, window_s, min_runs)",
        ),
        ("error_rate", "2", "error_rate 2: value must be at most 1 (got 2)"),
        ("error_rate", "lots", "error_rate: 'lots' is not a number"),
        (
            "duration_max_s",
            "soon",
            "duration_max_s: 'soon' is not a number or a duration such as 90s or 10m",
        ),
        ("scenario_invalid", "3", "scenario_invalid takes no value: use on or off"),
        (
            "operations_max",
            "on",
            "operations_max on: needs a value to be turned on (e.g. operations_max = 1000)",
        ),
        (
            "consecutive_failures",
            "1.5",
            "consecutive_failures 1.5: value expects a whole number (got 1.5)",
        ),
        ("queue_max", "nan", "queue_max: 'nan' is not a finite number"),
    ],
)
def test_bad_edits_are_refused_and_nothing_is_written(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(UsageError) as caught:
        config.set_threshold(path, key, value)
    assert str(caught.value) == message
    assert not path.exists()


def test_an_invalid_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = b"# mine\n[thresholds]\nerror_rate = 7\n"
    path.write_bytes(original)
    for edit in (
        lambda: config.set_threshold(path, "queue_max", "5"),
        lambda: config.unset_threshold(path, "error_rate"),
        lambda: config.reset_thresholds(path),
    ):
        with pytest.raises(ConfigError, match=r":3: thresholds.error_rate.value: .*not changed$"):
            edit()
        assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_writes_are_atomic_keep_the_mode_and_follow_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "makestream.toml"
    real.parent.mkdir()
    real.write_text("[thresholds]\n")
    real.chmod(0o640)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    config.set_threshold(link, "queue_max", "9")
    assert link.is_symlink()
    assert real.read_text() == "[thresholds]\nqueue_max = 9\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(os.listdir(real.parent)) == ["makestream.toml"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[thresholds]\nqueue_max = 1\n")

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ConfigError) as caught:
        config.set_threshold(path, "queue_max", "2")
    assert str(caught.value) == f"{path}: cannot write the config file: No space left on device"
    assert path.read_text() == "[thresholds]\nqueue_max = 1\n"
    assert os.listdir(tmp_path) == ["config.toml"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[thresholds\nqueue_max = 3\n", "cfg.toml:1: invalid TOML: a [table] header lacks its "
         "closing ]"),
        ("[thresholds]\nqueue_max = ", "cfg.toml: invalid TOML: the file ends in the middle of "
         "a value"),
        ('a = 1\nb = "open\n', "cfg.toml:2: invalid TOML: a string lacks its closing quote"),
        ("a = 1\nb = { c = 1\n", "cfg.toml:2: invalid TOML: an inline table lacks its closing }"),
        ("a = [1, 2\n", "cfg.toml:1: invalid TOML: an array lacks its closing ]"),
        ("a = 1 2\n", "cfg.toml:1: invalid TOML: unexpected '2' at column 7"),
    ],
)
def test_broken_toml_is_described_in_words_at_its_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(text, "cfg.toml")
    assert str(raised.value) == expected
    assert "\\x00" not in str(raised.value)


def test_keys_in_seconds_take_durations_as_thresholds_set_does() -> None:
    parsed = parse(
        '[alerts]\nrenotify_s = "1h"\n[thresholds]\nduration_max_s = "10m"\n'
        'stuck_factor = { min_s = "2m" }\n'
    )
    assert parsed.renotify_s == 3600
    assert parsed.threshold("duration_max_s").value == 600
    assert parsed.threshold("stuck_factor").param("min_s") == 120
    with pytest.raises(ConfigError, match=r"expects a number or a duration such as 90s"):
        parse('[thresholds]\nduration_max_s = "soon"\n', "cfg.toml")
    with pytest.raises(ConfigError, match=r"error_rate.value: expects a number \(got '10m'\)"):
        parse('[thresholds]\nerror_rate = "10m"\n', "cfg.toml")

"""The configuration file: alert thresholds, validated, edited in place, written atomically.

Where: ``$MAKESTREAM_CONFIG`` when set, else ``$XDG_CONFIG_HOME/makestream/config.toml`` (default
``~/.config/makestream/config.toml``). A missing file means built-in defaults.

Schema (every table and key is optional)::

    [alerts]
    renotify_s = 3600          # raise an alert that stays active again every hour (0: never)

    [thresholds]               # defaults for every scenario
    duration_p95_factor = { value = 2.0, severity = "warning", min_samples = 20 }
    consecutive_failures = { value = 3, severity = "critical" }
    error_rate = { value = 0.3, window_runs = 50, window_s = 3600, min_runs = 10 }
    operations_max = 5000      # shorthand for { value = 5000 }
    scenario_paused = false    # shorthand for { enabled = false }

    [scenarios.123.thresholds] # overrides for scenario 123, field by field
    duration_max_s = { value = 300, severity = "critical" }

An entry is a table with ``value`` (a number; the flag rules scenario_invalid and scenario_paused
have none), ``severity`` (``"warning"`` or ``"critical"``), ``enabled`` (true or false) and the
rule's own parameters; or a bare number (the value) or boolean (enabled). The rules, their units,
defaults and parameters are listed in `makestream.engine.rules`.

An invalid file raises ConfigError (exit 2) with one line naming the file, the line and the key at
fault; nothing is ever written over a file that does not validate. Edits go through tomlkit so
comments and order survive, and are written to a temporary file in the same directory and moved
into place, so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import tomlkit
import tomlkit.items
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError
from tomlkit.exceptions import ParseError, TOMLKitError, UnexpectedEofError

from makestream.engine.rules import (
    RULES,
    EffectiveThresholds,
    Override,
    RuleSpec,
    Severity,
)
from makestream.errors import ConfigError, UsageError, plain

ENV = "MAKESTREAM_CONFIG"
NEW_FILE_HEADER = "# makestream configuration (see: makestream thresholds --help)\n"

# --- the schema ---------------------------------------------------------------------------------


def _not_bool(value: Any) -> Any:
    # pydantic reads true as 1 in lax mode; a boolean where a number belongs is a mistake.
    if isinstance(value, bool):
        raise PydanticCustomError(
            "number_type", "must be a number, not {input}", {"input": str(value).lower()}
        )
    return value


def _duration(value: Any) -> Any:
    # A key in seconds takes a duration as `thresholds set` does: "10m" is 600.
    if isinstance(value, str):
        from makestream.timeutil import parse_duration

        try:
            seconds = parse_duration(value)
        except UsageError:
            raise PydanticCustomError(
                "duration", "expects a number or a duration such as 90s or 10m", {},
            ) from None
        return int(seconds) if seconds.is_integer() else seconds
    return value


def _number(
    integer: bool, minimum: float, exclusive: bool, maximum: float | None, *, seconds: bool = False
) -> Any:
    limits = Field(gt=minimum if exclusive else None, ge=None if exclusive else minimum, le=maximum)
    checks = [BeforeValidator(_not_bool)] + ([BeforeValidator(_duration)] if seconds else [])
    return Annotated[int if integer else float, *checks, limits]


class _Entry(BaseModel):
    """A threshold entry; subclasses are made per rule from the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    has_value: ClassVar[bool] = True

    severity: Severity | None = None
    enabled: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            return {"enabled": data}
        if isinstance(data, int | float | str) and cls.has_value:
            return {"value": data}
        if isinstance(data, dict):
            return data
        shape = 'a number, true, false, or a table such as { value = 3, severity = "critical" }'
        if not cls.has_value:
            shape = 'true, false, or a table such as { severity = "warning" }'
        raise PydanticCustomError("threshold_shape", "must be {shape}", {"shape": shape})


class _FlagEntry(_Entry):
    has_value: ClassVar[bool] = False


def _entry_model(spec: RuleSpec) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    if spec.has_value:
        kind = _number(
            spec.integer, spec.minimum, spec.exclusive_minimum, spec.maximum, seconds=spec.seconds
        )
        fields["value"] = (kind | None, None)
    for name, param in spec.params.items():
        number = _number(param.integer, param.minimum, False, None, seconds=param.unit == "s")
        fields[name] = (number | None, None)
    base = _Entry if spec.has_value else _FlagEntry
    return create_model(spec.key, __base__=base, **fields)


ENTRY_MODELS: Mapping[str, type[BaseModel]] = {key: _entry_model(s) for key, s in RULES.items()}
_STRICT = ConfigDict(extra="forbid", frozen=True)
_TABLE_FIELDS: dict[str, Any] = {key: (model | None, None) for key, model in ENTRY_MODELS.items()}
_Table = create_model("Thresholds", __config__=_STRICT, **_TABLE_FIELDS)


class _Alerts(BaseModel):
    model_config = _STRICT
    renotify_s: Annotated[
        float, BeforeValidator(_not_bool), BeforeValidator(_duration), Field(ge=0)
    ] = 0.0


_Scenario = create_model("Scenario", __config__=_STRICT, thresholds=(_Table | None, None))
_File = create_model(
    "ConfigFile",
    __config__=_STRICT,
    alerts=(_Alerts, _Alerts()),
    thresholds=(_Table | None, None),
    scenarios=(dict[Annotated[int, Field(gt=0)], _Scenario], {}),
)

# --- errors, and where they are in the file -----------------------------------------------------

_VOCABULARY = sorted(
    {
        "alerts",
        "thresholds",
        "scenarios",
        "renotify_s",
        "value",
        "severity",
        "enabled",
        *RULES,
        *(p for s in RULES.values() for p in s.params),
    }
)
_PART = r'(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*(?P<key>{_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"^\s*(?P<key>{_DOTTED})\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in re.findall(_PART, dotted))


def locate(text: str, loc: tuple[str, ...]) -> int | None:
    """The line (1-based) that best matches a key path: the header or key that shares the
    longest prefix with it. A line-oriented scan is enough because TOML keys and headers each
    start their own line."""
    table: tuple[str, ...] = ()
    best, line = 0, None
    for number, text_line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(text_line):
            table = path = _split_key(header["key"])
        elif key := _KEY.match(text_line):
            path = table + _split_key(key["key"])
        else:
            continue
        common = 0
        for a, b in zip(path, loc, strict=False):
            if a != b:
                break
            common += 1
        if common == min(len(path), len(loc)) and common > best:
            best, line = common, number
    return line


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a configuration: the key path and what is wrong with it."""

    loc: tuple[str, ...]
    message: str
    more: int = 0

    @property
    def key(self) -> str:
        return ".".join(self.loc) or "(file)"

    def at(self, source: str, text: str | None) -> str:
        """One line: ``FILE:LINE: KEY: MESSAGE``."""
        line = locate(text, self.loc) if text is not None else None
        where = f"{source}:{line}" if line is not None else source
        extra = f" (and {self.more} more)" if self.more else ""
        return f"{where}: {self.key}: {self.message}{extra}"


def _problem(exc: ValidationError) -> Problem:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(str(p) for p in first["loc"] if p != "[key]")
    kind = first["type"]
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(loc[-1], _VOCABULARY, n=1, cutoff=0.75)
        message = "unknown key" + (f" (did you mean {hint[0]}?)" if hint else "")
    elif "[key]" in [str(p) for p in first["loc"]]:
        message = "scenario ids are positive numbers, as in [scenarios.123.thresholds]"
    else:
        message = plain(first["msg"])
        value = first.get("input")
        if (
            isinstance(value, int | float | str)
            and not isinstance(value, bool)
            and kind != "threshold_shape"
        ):
            message += f" (got {value!r})"
    return Problem(loc, message, len(errors) - 1)


def _overrides(table: Mapping[str, Any] | None) -> dict[str, Override]:
    result: dict[str, Override] = {}
    for key, entry in (table or {}).items():
        if entry is None:
            continue
        params = {n: float(entry[n]) for n in RULES[key].params if entry.get(n) is not None}
        value = entry.get("value")
        result[key] = Override(
            value=None if value is None else float(value),
            severity=entry.get("severity"),
            enabled=entry.get("enabled"),
            params=params,
        )
    return result


def _check_merged(thresholds: EffectiveThresholds) -> Problem | None:
    """What a single table cannot show: a rule turned on with no value anywhere, or a window
    smaller than the runs it needs."""
    tables: list[tuple[tuple[str, ...], int | None, Mapping[str, Override]]] = [
        (("thresholds",), None, thresholds.defaults)
    ]
    tables += [
        (("scenarios", str(sid), "thresholds"), sid, t) for sid, t in thresholds.scenarios.items()
    ]
    for prefix, sid, table in tables:
        for key in table:
            merged = thresholds.threshold(key, sid)
            if merged.enabled and not merged.active:
                return Problem((*prefix, key), f"needs a value to be turned on (e.g. {key} = 1000)")
            if "min_runs" in merged.params and merged.param("min_runs") > merged.param(
                "window_runs"
            ):
                return Problem((*prefix, key), "min_runs must not exceed window_runs")
    return None


def check_document(data: Mapping[str, Any]) -> EffectiveThresholds | Problem:
    """Validate a parsed file; the thresholds it describes, or the first problem."""
    try:
        model = _File.model_validate(data)
    except ValidationError as exc:
        return _problem(exc)
    dumped = model.model_dump()
    renotify = dumped["alerts"]["renotify_s"]
    thresholds = EffectiveThresholds(
        defaults=_overrides(dumped["thresholds"]),
        scenarios={sid: _overrides(s["thresholds"]) for sid, s in dumped["scenarios"].items()},
        renotify_s=renotify or None,
    )
    return _check_merged(thresholds) or thresholds


# --- reading ------------------------------------------------------------------------------------


def default_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$MAKESTREAM_CONFIG`, else the XDG location."""
    if explicit := env.get(ENV, "").strip():
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME", "").strip()
    # XDG says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "makestream" / "config.toml"


@dataclass(frozen=True)
class Config:
    """A loaded configuration: where it came from and the thresholds it sets."""

    path: Path
    exists: bool
    thresholds: EffectiveThresholds


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist.

    Only a regular file (or a symlink to one) is read, and at most CONFIG_MAX_BYTES of it.
    """
    from makestream.files import read_text_capped
    from makestream.limits import CONFIG_MAX_BYTES

    try:
        return read_text_capped(path, CONFIG_MAX_BYTES, "config file", error=ConfigError)
    except FileNotFoundError:
        return None


def _unclosed(line: str) -> str | None:
    """What a TOML line leaves open, if it plainly does (for messages only)."""
    code = line.split("#", 1)[0].strip() if line.count('"') % 2 == 0 else line.strip()
    if code.startswith("[") and "=" not in code and not code.rstrip().endswith("]"):
        return "a [table] header lacks its closing ]"
    if code.count('"') % 2 or code.count("'") % 2:
        return "a string lacks its closing quote"
    if code.count("{") > code.count("}"):
        return "an inline table lacks its closing }"
    if "=" in code and code.count("[") > code.count("]"):
        return "an array lacks its closing ]"
    return None


def _toml_problem(exc: ParseError, text: str) -> tuple[int | None, str]:
    """The line at fault and tomlkit's complaint in plain words."""
    lines = text.splitlines()
    message = re.sub(r" at line \d+ col \d+$", "", str(exc))
    at_end = isinstance(exc, UnexpectedEofError) or message.endswith("'\\x00'")
    if at_end:
        # tomlkit places the end of the file at line 1; the line left open is the real fault.
        for number, line in enumerate(lines, 1):
            if (reason := _unclosed(line)) is not None:
                return number, reason
        return None, "the file ends in the middle of a value"
    line = lines[exc.line - 1] if 0 < exc.line <= len(lines) else ""
    if (reason := _unclosed(line)) is not None:
        return exc.line, reason
    if message.endswith("'\\n'"):
        return exc.line, "the line ends in the middle of a value"
    if message.startswith("Unexpected character: "):
        return exc.line, f"unexpected {message.removeprefix('Unexpected character: ')} " \
            f"at column {exc.col + 1}"
    return exc.line, message.rstrip(".")


def parse_document(text: str, source: str) -> tomlkit.TOMLDocument:
    try:
        doc = tomlkit.parse(text)
        doc.unwrap()  # some damage (a key defined twice across tables) only shows here
        return doc
    except ParseError as exc:
        line, reason = _toml_problem(exc, text)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: invalid TOML: {reason}") from None
    except TOMLKitError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"{source}: invalid TOML: {reason}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None


def parse(text: str, source: str = "<config>") -> EffectiveThresholds:
    """Validate configuration text; raises ConfigError with `source:line: key: message`."""
    result = check_document(parse_document(text, source).unwrap())
    if isinstance(result, Problem):
        raise ConfigError(result.at(source, text))
    return result


def load(path: Path | None = None, *, env: Mapping[str, str] = os.environ) -> Config:
    """Load the configuration (built-in defaults when the file does not exist)."""
    path = path if path is not None else default_path(env)
    text = read_text(path)
    if text is None:
        return Config(path, False, EffectiveThresholds())
    return Config(path, True, parse(text, str(path)))


# --- writing ------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step, keeping its permissions.

    A symlinked config (dotfile managers do this) is followed, so the link survives and its
    target is what changes. A file that cannot be written (a read-only or missing folder, a
    full disk) is a ConfigError of one line naming `path`; the old file is left as it was.
    """
    try:
        _replace(path, text)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{path}: cannot write the config file: {reason}") from None


def _replace(path: Path, text: str) -> None:
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- editing ------------------------------------------------------------------------------------

_ON = frozenset({"on", "true", "yes", "enabled"})
_OFF = frozenset({"off", "false", "no", "disabled"})


@dataclass(frozen=True)
class Setting:
    """One `thresholds set` request: a rule (or one of its parameters) and the new value."""

    rule: str
    param: str | None
    value: int | float | bool  # a bool switches the rule on or off


def split_key(key: str) -> tuple[str, str | None]:
    """`rule` or `rule.param` → (rule, param); a UsageError for names the catalog lacks."""
    rule, _, param = key.partition(".")
    if rule not in RULES:
        hint = difflib.get_close_matches(rule, list(RULES), n=1, cutoff=0.6)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise UsageError(
            f"unknown threshold {rule!r}{suggestion}; `makestream thresholds` lists them"
        )
    if param and param not in RULES[rule].params:
        known = ", ".join(RULES[rule].params) or "none"
        raise UsageError(f"{rule} has no parameter {param!r} (its parameters: {known})")
    return rule, param or None


def parse_setting(key: str, text: str) -> Setting:
    """Read `KEY VALUE` as typed on the command line: a number, a duration for the keys in
    seconds (`10m`), or on/off."""
    from makestream.timeutil import parse_duration

    rule, param = split_key(key)
    spec = RULES[rule]
    word = text.strip().lower()
    if param is None and word in _ON | _OFF:
        return Setting(rule, None, word in _ON)
    if param is None and not spec.has_value:
        raise UsageError(f"{rule} takes no value: use on or off")
    seconds = spec.params[param].unit == "s" if param else spec.seconds
    try:
        number = parse_duration(text, option=key) if seconds else float(text)
    except (UsageError, ValueError):
        shape = "a number or a duration such as 90s or 10m" if seconds else "a number"
        raise UsageError(f"{key}: {text!r} is not {shape}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UsageError(f"{key}: {text!r} is not a finite number")
    return Setting(rule, param, int(number) if number.is_integer() else number)


def _is_table(item: Any) -> bool:
    return isinstance(item, tomlkit.items.InlineTable | tomlkit.items.Table)


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _thresholds_table(doc: tomlkit.TOMLDocument, scenario: int | None, *, create: bool) -> Any:
    """The `[thresholds]` or `[scenarios.ID.thresholds]` table, created when asked."""
    if scenario is None:
        if "thresholds" not in doc:
            if not create:
                return None
            doc["thresholds"] = tomlkit.table()
        return doc["thresholds"]
    if "scenarios" not in doc:
        if not create:
            return None
        # A super table renders as [scenarios.123.thresholds] without empty parent headers.
        doc["scenarios"] = tomlkit.table(is_super_table=True)
    scenarios: Any = doc["scenarios"]
    sid = str(scenario)
    if sid not in scenarios:
        if not create:
            return None
        scenarios[sid] = tomlkit.table(is_super_table=True)
    if "thresholds" not in scenarios[sid]:
        if not create:
            return None
        scenarios[sid]["thresholds"] = tomlkit.table()
    return scenarios[sid]["thresholds"]


def _tidy(doc: tomlkit.TOMLDocument, scenario: int | None) -> None:
    """Drop a scenario's tables once they hold nothing, so resets leave no empty headers."""
    scenarios: Any = doc.get("scenarios")
    if scenario is None or scenarios is None or str(scenario) not in scenarios:
        return
    entry = scenarios[str(scenario)]
    if "thresholds" in entry and not entry["thresholds"]:
        del entry["thresholds"]
    if not entry:
        del scenarios[str(scenario)]
    if not scenarios:
        del doc["scenarios"]


def _drop_key(table: Any, rule: str, key: str) -> None:
    """Remove one key of a rule's entry. tomlkit leaves the separator of a removed inline-table
    key behind (`{ value = 5  }`), so an inline table is rebuilt in the style it was written
    in, keeping the comment after it."""
    entry = table[rule]
    if not isinstance(entry, tomlkit.items.InlineTable):
        del entry[key]
        return
    parts = [
        f"{k.as_string().strip()} = {v.as_string().strip()}"
        for k, v in entry.value.body
        if k is not None and k.key != key
    ]
    pad = " " if entry.as_string().startswith("{ ") else ""
    fresh: Any = tomlkit.parse(f"x = {{{pad}{', '.join(parts)}{pad}}}")["x"]
    fresh.trivia.comment_ws, fresh.trivia.comment = entry.trivia.comment_ws, entry.trivia.comment
    table[rule] = fresh


def _apply(table: Any, setting: Setting, severity: Severity | None) -> None:
    current = table.get(setting.rule)
    if setting.param is None and severity is None and not _is_table(current):
        # Nothing but a value: keep the short form (`key = 300`, `key = false`).
        table[setting.rule] = setting.value
        return
    if _is_table(current):
        entry = current
    else:
        entry = tomlkit.inline_table()
        plain = _plain(current)
        if isinstance(plain, bool):
            entry["enabled"] = plain
        elif isinstance(plain, int | float):
            entry["value"] = plain
        table[setting.rule] = entry
    if setting.param is not None:
        entry[setting.param] = setting.value
    elif isinstance(setting.value, bool):
        entry["enabled"] = setting.value
    else:
        entry["value"] = setting.value
    if severity is not None:
        entry["severity"] = severity
    if not isinstance(setting.value, bool) and setting.param is None and "enabled" in entry:
        _drop_key(table, setting.rule, "enabled")  # a new value means the rule is wanted again


def _open_for_edit(path: Path) -> tuple[tomlkit.TOMLDocument, bool]:
    """The document to edit; refuses a file that does not validate, so it is never replaced."""
    text = read_text(path)
    if text is None:
        return tomlkit.parse(NEW_FILE_HEADER), False
    doc = parse_document(text, str(path))
    problem = check_document(doc.unwrap())
    if isinstance(problem, Problem):
        raise ConfigError(problem.at(str(path), text) + "; fix the file first, it was not changed")
    return doc, True


def _save(path: Path, doc: tomlkit.TOMLDocument, what: str) -> None:
    text = doc.as_string()
    result = check_document(tomlkit.parse(text).unwrap())
    if isinstance(result, Problem):
        # Name the field within the rule ("value", "window_runs"); the rule is in `what`.
        inner = (
            result.loc[result.loc.index("thresholds") + 2 :] if "thresholds" in result.loc else ()
        )
        field = f"{'.'.join(inner)} " if inner else ""
        raise UsageError(f"{what}: {field}{result.message}")
    write_atomic(path, text)


def set_threshold(
    path: Path,
    key: str,
    value: str,
    *,
    scenario: int | None = None,
    severity: Severity | None = None,
) -> None:
    """`thresholds set`: set a rule's value (or on/off, or one parameter) and maybe severity."""
    setting = parse_setting(key, value)
    doc, _ = _open_for_edit(path)
    _apply(_thresholds_table(doc, scenario, create=True), setting, severity)
    _save(path, doc, f"{key} {value}")


def with_settings(path: Path, settings: Mapping[str, str]) -> EffectiveThresholds:
    """The thresholds of the file at `path` with `settings` (KEY → VALUE as `thresholds set`
    takes them) applied on top, in memory only: the file is not written. A bad key or value is
    the UsageError `thresholds set` would give."""
    doc, _ = _open_for_edit(path)
    for key, value in settings.items():
        _apply(_thresholds_table(doc, None, create=True), parse_setting(key, value), None)
    result = check_document(tomlkit.parse(doc.as_string()).unwrap())
    if isinstance(result, Problem):
        inner = result.loc[result.loc.index("thresholds") + 1 :] if "thresholds" in result.loc \
            else result.loc
        raise UsageError(f"{'.'.join(inner)}: {result.message}")
    return result


def unset_threshold(path: Path, key: str, *, scenario: int | None = None) -> bool:
    """`thresholds unset`: drop a rule's entry (or one parameter); False if it was not set."""
    rule, param = split_key(key)
    doc, exists = _open_for_edit(path)
    table = _thresholds_table(doc, scenario, create=False) if exists else None
    if table is None or rule not in table:
        return False
    if param is not None:
        entry = table[rule]
        if not _is_table(entry) or param not in entry:
            return False
        if len(entry) == 1:
            del table[rule]
        else:
            _drop_key(table, rule, param)
    else:
        del table[rule]
    _tidy(doc, scenario)
    _save(path, doc, key)
    return True


def reset_thresholds(path: Path, *, scenario: int | None = None) -> bool:
    """`thresholds reset`: drop one scenario's overrides, or (no scenario) every threshold
    setting in the file. False when there was nothing to drop."""
    doc, exists = _open_for_edit(path)
    if not exists:
        return False
    changed = False
    scenarios: Any = doc.get("scenarios")
    targets = (
        [scenario]
        if scenario is not None
        else [int(s) for s in (scenarios or {}) if str(s).isdigit()]
    )
    for sid in targets:
        if _thresholds_table(doc, sid, create=False) is not None:
            del doc["scenarios"][str(sid)]["thresholds"]
            _tidy(doc, sid)
            changed = True
    if scenario is None and "thresholds" in doc:
        del doc["thresholds"]
        changed = True
    if changed:
        _save(path, doc, "reset")
    return changed

"""Where each endpoint's payload sits in its JSON body, and how to get it out.

Make wraps most answers in a named key (`{"scenario": {...}}`, `{"scenarioLogs": [...]}`), but
not all (`/executions/{id}`), and some shapes are undocumented (triggers) or seen in several forms
(the blueprint). Each function here takes a decoded body and returns models, raising ValueError
(pydantic's ValidationError is one) when the body is not what it should be; the client turns that
into a PayloadError naming the endpoint.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from makestream.make.failures import invalid_reason
from makestream.make.models import (
    Blueprint,
    DlqBundleEntry,
    ExecutionDetail,
    ExecutionLog,
    LogPage,
    MakeModel,
    ModuleLog,
    ModuleLogPage,
    Page,
    Problem,
    Trigger,
    fields_of,
)

M = TypeVar("M", bound=MakeModel)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body


def one(body: Any, model: type[M], *keys: str) -> M:
    """The object under the first of `keys` present in `body`."""
    data = _object(body)
    for key in keys:
        if isinstance(data.get(key), dict):
            return model.model_validate(data[key])
    raise ValueError(f"no {' or '.join(repr(k) for k in keys)} object")


def many(body: Any, model: type[M], key: str) -> list[M]:
    """The list under `key` (a missing or null list is empty)."""
    items = _object(body).get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"{key!r} is not a list")
    return [model.model_validate(item) for item in items]


def page(body: Any) -> Page | None:
    pg = _object(body).get("pg")
    return Page.model_validate(pg) if isinstance(pg, dict) else None


# How much of an entry's imtId (or id) a problem quotes, and of the reason.
_LABEL_MAX = 100
_REASON_MAX = 300


def lenient(model: type[M], entry: Any) -> tuple[M | None, Problem | None]:
    """One entry of a list Make answered, and what could not be read of it (None: all).

    A field that cannot be read is taken as absent (its default, listed in the model's
    `unread`), so that one odd value does not cost the whole entry; only an entry that still
    cannot be read (its id unreadable, say) is left out (None)."""
    try:
        return model.model_validate(entry), None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        reason = (invalid_reason(exc) if isinstance(exc, ValidationError) else str(exc))
        reason = reason[:_REASON_MAX]
        label = _label(entry)
        bad = (sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
               if isinstance(exc, ValidationError) else [])
        if isinstance(entry, dict) and bad and all(key in entry for key in bad):
            kept = {key: value for key, value in entry.items() if key not in bad}
            try:
                salvaged = model.model_validate(kept)
            except (ValueError, TypeError, OverflowError, RecursionError):
                pass
            else:
                salvaged._unread = fields_of(model, set(bad))
                return salvaged, Problem(label, ", ".join(bad), reason)
        return None, Problem(label, "", reason)


def many_lenient(body: Any, model: type[M], key: str) -> tuple[list[M], int, list[Problem]]:
    """The list under `key` read entry by entry (`lenient`): the entries, how many were
    listed, and a line for each that could not be read in full. A body that is not the
    documented shape at all is still a ValueError."""
    raw = _object(body).get(key)
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ValueError(f"{key!r} is not a list")
    items: list[M] = []
    problems: list[Problem] = []
    for entry in raw:
        item, problem = lenient(model, entry)
        if item is not None:
            items.append(item)
        if problem is not None:
            problems.append(problem)
    return items, len(raw), problems


def log_page(body: Any) -> LogPage:
    items, size, problems = many_lenient(body, ExecutionLog, "scenarioLogs")
    return LogPage(items=items, pg=page(body), size=size, problems=problems)


def _label(entry: Any) -> str:
    """What names an entry: its imtId, else its id, else nothing."""
    if isinstance(entry, dict):
        for key in ("imtId", "id"):
            value = entry.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                text = str(value)
                return f"{key} {text[:_LABEL_MAX]}{'…' if len(text) > _LABEL_MAX else ''}"
    return "an entry without id"


def module_log_page(body: Any) -> ModuleLogPage:
    items, size, problems = many_lenient(body, ModuleLog, "moduleLogs")
    return ModuleLogPage(items=items, pg=page(body), size=size, problems=problems)


def execution_detail(body: Any) -> ExecutionDetail:
    """The body itself (documented unwrapped); an `execution` wrapper is accepted too."""
    data = _object(body)
    if "status" not in data and isinstance(data.get("execution"), dict):
        data = data["execution"]
    return ExecutionDetail.model_validate(data)


def blueprint(body: Any) -> Blueprint:
    """The blueprint from `{"code":"OK","response":{"blueprint":...}}` (documented),
    `{"response":{"blueprint":...}}`, `{"blueprint":...}` or a bare blueprint."""
    data = _object(body)
    if isinstance(data.get("response"), dict):
        data = data["response"]
    if isinstance(data.get("blueprint"), dict):
        return Blueprint.model_validate(data["blueprint"])
    if "flow" in data:  # a bare blueprint
        return Blueprint.model_validate(data)
    raise ValueError("no 'blueprint' object")


_TRIGGER_KEYS = ("id", "queueCount", "typeName", "udid")


def triggers(body: Any) -> list[Trigger]:
    """The shape is undocumented: accept a list, `triggers`/`hooks` lists, `trigger`/`hook`
    objects, or one bare trigger object (OAS)."""
    if isinstance(body, list):
        return [Trigger.model_validate(item) for item in body]
    data = _object(body)
    for key in ("triggers", "hooks"):
        if key in data:
            return many(data, Trigger, key)
    for key in ("trigger", "hook"):
        if key in data:
            value = data[key]
            return [] if value is None else [Trigger.model_validate(value)]
    if any(key in data for key in _TRIGGER_KEYS):
        return [Trigger.model_validate(data)]
    if not data:
        return []
    raise ValueError("no 'triggers' list")


def dlq_bundle(body: Any) -> dict[str, DlqBundleEntry]:
    """`{"code":"OK","response":{"<moduleId>":{"error"|"value"}}}`: per-module data by module id."""
    data = _object(body)
    entries = data.get("response", data)
    if not isinstance(entries, dict):
        raise ValueError("'response' is not an object")
    return {
        str(module_id): DlqBundleEntry.model_validate(entry)
        for module_id, entry in entries.items()
        if isinstance(entry, dict)
    }

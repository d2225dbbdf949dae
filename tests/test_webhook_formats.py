"""`--webhook-format`, `--webhook-header` and `--webhook-secret-file`: each format's body against
its committed snapshot and its receiver's documented shape, and the sink delivering them.

Snapshots live in `tests/snapshots/webhook/FORMAT.STATE.json` (the body, pretty-printed); after
checking a deliberate change, regenerate them with::

    MAKESTREAM_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_webhook_formats.py

References: CloudEvents through the `cloudevents` SDK (its v2 `core` API), Standard Webhooks
through `standardwebhooks.Webhook.verify`, Alertmanager against the keys of its documented
version-4 example, Slack, Discord and Teams against the required keys, types and caps their
references give.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from test_sinks import FAST, Receiver, raised, resolved, started, until

from makestream.clock import Clock
from makestream.errors import UsageError
from makestream.events import AlertRaised, AlertResolved, ExecutionFinished, encode, rfc3339
from makestream.limits import TOKEN_MAX_BYTES
from makestream.sinks import AlertmanagerSink, WebhookOptions, WebhookSink, build_webhook_sink
from makestream.sinks.alertmanager import alert_annotations, alert_labels
from makestream.sinks.base import Failure
from makestream.sinks.formats import FORMATS, Context, NotAnAlert, guess_format, parse_format
from makestream.sinks.formats import render as render_format
from makestream.sinks.formats import slack as slack_format
from makestream.sinks.formats.alertmanager import fingerprint, group_key
from makestream.sinks.formats.text import fit, units, visible
from makestream.sinks.headers import parse_header, parse_headers
from makestream.sinks.signing import Signer, message_id
from makestream.sinks.webhook import hint, refusal, said

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "webhook"
UPDATE_ENV = "MAKESTREAM_UPDATE_SNAPSHOTS"
NOW = "2026-11-26T10:30:00.000Z"
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret of 32 bytes, ok!!").decode()

RAISED = AlertRaised(
    alert_id="consecutive_failures:4211",
    rule="consecutive_failures",
    severity="critical",
    value=3,
    threshold=3,
    scenario_id=4211,
    execution_id="7f3c2a90d1e84b5c",
    message='scenario "Sync <CRM> & *invoices*": 3 runs in a row failed (@here)',
    seq=42,
    ts="2026-11-26T10:00:00.000Z",
    cursor="1.eJyrVkrOz0nNTc0rUbJSMjQyMjAwNDJQqgUAUGkGvQ~s1.42",
    scenario_name="Sync <CRM> & *invoices*",
    url="https://eu1.make.com/7/scenarios/4211/logs/7f3c2a90d1e84b5c",
)
RESOLVED = AlertResolved(
    alert_id="consecutive_failures:4211",
    rule="consecutive_failures",
    severity="critical",
    value=0,
    threshold=3,
    scenario_id=4211,
    execution_id="7f3c2a90d1e84b5c",
    message='scenario "Sync <CRM> & *invoices*": a run succeeded again',
    seq=57,
    ts="2026-11-26T10:20:00.000Z",
    cursor="1.eJyrVkrOz0nNTc0rUbJSMjQyMjAwNDJQqgUAUGkGvQ~s1.57",
)
EVENTS = {"raised": RAISED, "resolved": RESOLVED}


def context(state: str = "raised") -> Context:
    return Context(now=NOW, raised_at=RAISED.ts if state == "resolved" else None)


def body_of(format_name: str, event: Any, ctx: Context | None = None) -> Any:
    return orjson.loads(render_format(format_name, event, ctx or context()).body)


def assert_json_snapshot(name: str, body: bytes) -> None:
    path = SNAPSHOTS / f"{name}.json"
    actual = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode() + "\n"
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"no snapshot {path.name}: run with {UPDATE_ENV}=1 to create it")
    assert actual == path.read_text(encoding="utf-8"), f"{path.name} drifted"


# --- snapshots ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["raised", "resolved"])
@pytest.mark.parametrize("format_name", FORMATS)
def test_each_format_renders_as_its_snapshot_and_always_alike(format_name: str, state: str) -> None:
    rendered = render_format(format_name, EVENTS[state], context(state))
    assert render_format(format_name, EVENTS[state], context(state)) == rendered  # pure
    assert_json_snapshot(f"{format_name}.{state}", rendered.body)
    media = "cloudevents+json" if format_name == "cloudevents" else "json"
    assert rendered.content_type == f"application/{media}"
    assert rendered.headers == ()


def test_json_is_the_event_line_unchanged_for_any_event() -> None:
    finished = ExecutionFinished(scenario_id=1, status="error", seq=3, ts=NOW)
    for event in (RAISED, RESOLVED, finished):
        assert render_format("json", event, context()).body == encode(event).rstrip(b"\n")


@pytest.mark.parametrize("format_name", ["slack", "discord", "teams", "alertmanager"])
def test_the_alert_formats_refuse_other_events(format_name: str) -> None:
    with pytest.raises(NotAnAlert, match=f"the {format_name} format renders alert events"):
        render_format(format_name, ExecutionFinished(scenario_id=1, status="error"), context())


def test_the_format_names_are_checked_in_makestreams_words() -> None:
    assert parse_format(" Slack ") == "slack"
    with pytest.raises(UsageError, match=r"--webhook-format: unknown format 'mattermost' \(exp"):
        parse_format("mattermost")


# --- CloudEvents ----------------------------------------------------------------------------------


FINISHED = ExecutionFinished(scenario_id=1, status="error", seq=9, ts=NOW)


@pytest.mark.parametrize("event", [RAISED, RESOLVED, FINISHED])
def test_cloudevents_parse_with_the_sdk_in_structured_mode(event: Any) -> None:
    rendered = render_format("cloudevents", event, context())
    parsed = from_structured(
        HTTPMessage(headers={"content-type": rendered.content_type}, body=rendered.body),
        JSONFormat(),
    )
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_type() == f"com.makestream.{event.type}"
    assert parsed.get_source() == "makestream"
    assert parsed.get_datacontenttype() == "application/json"
    when = parsed.get_time()
    assert isinstance(when, datetime) and when.tzinfo is not None
    assert when == datetime.fromisoformat(event.ts)
    assert parsed.get_data() == orjson.loads(encode(event))
    assert parsed.get_subject() == getattr(event, "alert_id", None)


def test_a_cloudevent_id_is_stable_for_one_event_and_differs_between_events() -> None:
    def ce_id(event: Any) -> str:
        return str(body_of("cloudevents", event)["id"])

    assert ce_id(RAISED) == ce_id(RAISED.model_copy())
    renotified = RAISED.model_copy(update={"seq": 99, "ts": "2026-11-26T11:00:00.000Z"})
    assert len({ce_id(RAISED), ce_id(RESOLVED), ce_id(renotified)}) == 3


def test_a_cloudevent_without_an_emission_time_takes_the_context_time() -> None:
    assert body_of("cloudevents", resolved(1))["time"] == NOW


# --- Alertmanager ---------------------------------------------------------------------------------

# The keys of the example in Alertmanager's documentation (webhook_config, version 4).
AM_TOP = {
    "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
    "commonLabels", "commonAnnotations", "externalURL", "alerts",
}  # fmt: skip
AM_ALERT = {
    "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint",
}  # fmt: skip


@pytest.mark.parametrize("state", ["raised", "resolved"])
def test_alertmanager_payloads_have_the_documented_keys_and_types(state: str) -> None:
    body = body_of("alertmanager", EVENTS[state], context(state))
    assert set(body) == AM_TOP
    assert body["version"] == "4" and body["truncatedAlerts"] == 0
    assert body["status"] == {"raised": "firing", "resolved": "resolved"}[state]
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        assert all(isinstance(v, str) for v in body[key].values())
    [alert] = body["alerts"]
    assert set(alert) == AM_ALERT
    assert alert["status"] == body["status"]
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert len(alert["fingerprint"]) == 16
    if state == "raised":
        assert (alert["startsAt"], alert["endsAt"]) == (RAISED.ts, "0001-01-01T00:00:00Z")
        assert alert["generatorURL"] == RAISED.url  # type: ignore[attr-defined]
    else:
        assert (alert["startsAt"], alert["endsAt"]) == (RAISED.ts, RESOLVED.ts)


def test_the_fingerprint_and_group_key_are_alertmanagers() -> None:
    # The vectors of prometheus/common's model/signature_test.go, which Alertmanager uses.
    assert int(fingerprint({}), 16) == 14695981039346656037
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(fingerprint(labels), 16) == 5799056148416392346
    labels = {f"{n}-label": f"{n}-label-value" for n in ("first", "second", "third")}
    assert int(fingerprint(labels), 16) == 13843036195897128121
    assert group_key({"job": "prometheus24", "alertname": "Test"}) == (
        '{}:{alertname="Test", job="prometheus24"}'
    )


async def test_the_alertmanager_format_and_the_alertmanager_sink_name_an_alert_alike() -> None:
    async with Receiver().running() as receiver:
        # Both stamp startsAt with the wall clock at the moment the event was offered.
        stamped_at = datetime.fromisoformat(RAISED.ts).timestamp() + 3600
        am = AlertmanagerSink(receiver.url, wall=lambda: stamped_at, labels={"instance": "ci"})
        hook = WebhookSink(
            receiver.url, format="alertmanager", wall=lambda: stamped_at, labels={"instance": "ci"}
        )
        async with started(am), started(hook):
            am.offer(RAISED)
            await until(lambda: len(receiver.accepted) == 1)
            hook.offer(RAISED)
            await until(lambda: len(receiver.accepted) == 2)
    [from_sink] = orjson.loads(receiver.accepted[0])
    [from_format] = orjson.loads(receiver.accepted[1])["alerts"]
    assert from_format["labels"] == from_sink["labels"] == alert_labels(RAISED, {"instance": "ci"})
    assert from_format["annotations"] == from_sink["annotations"] == alert_annotations(RAISED)
    assert from_format["startsAt"] == from_sink["startsAt"]


async def test_the_sink_remembers_when_an_alert_was_raised_for_its_resolution() -> None:
    walls = iter([1_800_000_000.0, 1_800_000_042.5])
    async with Receiver().running() as receiver:
        sink = WebhookSink(
            receiver.url, format="alertmanager", backoff=FAST, wall=lambda: next(walls)
        )
        async with started(sink):
            sink.offer(RAISED)
            sink.offer(RESOLVED.model_copy(update={"ts": ""}))
            await until(lambda: len(receiver.accepted) == 2)
    [alert] = orjson.loads(receiver.accepted[1])["alerts"]
    assert alert["startsAt"] == rfc3339(1_800_000_000.0)
    assert alert["endsAt"] == rfc3339(1_800_000_042.5)


async def test_alertmanager_bodies_carry_wall_clock_times_when_the_engine_clock_runs_fast() -> None:
    # Under a sped-up demo the events' ts run ahead of every receiver's clock; Alertmanager
    # would keep a resolved alert active until that future time. The body takes the offer's
    # wall-clock time instead, as the --alertmanager sink does.
    future = datetime.fromisoformat(RAISED.ts).timestamp() + 3 * 3600
    up = RAISED.model_copy(update={"ts": rfc3339(future)})
    down = RESOLVED.model_copy(update={"ts": rfc3339(future + 600)})
    before = time.time()
    async with Receiver().running() as receiver:
        sink = WebhookSink(
            receiver.url, format="alertmanager", backoff=FAST, clock=Clock(speed=1000)
        )
        async with started(sink):
            sink.offer(up)
            sink.offer(down)
            await until(lambda: len(receiver.accepted) == 2)
    after = time.time()
    [firing] = orjson.loads(receiver.accepted[0])["alerts"]
    [done] = orjson.loads(receiver.accepted[1])["alerts"]
    for stamp in (firing["startsAt"], done["startsAt"], done["endsAt"]):
        at = datetime.fromisoformat(stamp).timestamp()
        assert before - 0.01 <= at <= after + 0.01, stamp
    assert done["startsAt"] == firing["startsAt"] <= done["endsAt"]


# --- Slack ----------------------------------------------------------------------------------------

SLACK_BLOCKS = {"header", "section", "context", "actions", "divider"}


def check_slack(body: dict[str, Any]) -> None:
    assert isinstance(body["text"], str) and 0 < units(body["text"]) <= 3000
    assert 0 < len(body["blocks"]) <= 50
    for block in body["blocks"]:
        assert block["type"] in SLACK_BLOCKS
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert units(block["text"]["text"]) <= 150
        if "text" in block and block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
            assert units(block["text"]["text"]) <= 3000
        for field in block.get("fields", []):
            assert field["type"] == "mrkdwn" and units(field["text"]) <= 2000
        assert len(block.get("fields", [])) <= 10
        assert len(block.get("elements", [])) <= 10


def mrkdwn_texts(body: dict[str, Any]) -> list[str]:
    texts = [body["text"]]
    for block in body["blocks"]:
        if block["type"] == "section" and "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


@pytest.mark.parametrize("event", [RAISED, RESOLVED])
def test_slack_messages_have_text_and_blocks_within_slacks_caps(event: Any) -> None:
    body = body_of("slack", event)
    check_slack(body)
    for text in mrkdwn_texts(body):
        # Outside text never reaches Slack as markup: only the link makestream wrote is.
        assert "<" not in text.replace("<https://eu1.make.com/7/scenarios/4211/logs/", "")
        assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


def test_slack_escapes_markup_and_caps_a_huge_message() -> None:
    event = raised(1).model_copy(update={"message": "<!channel> & " + "x" * 10_000})
    body = body_of("slack", event)
    check_slack(body)
    assert body["blocks"][1]["text"]["text"].startswith("&lt;!channel&gt; &amp; xxx")
    assert body["blocks"][1]["text"]["text"].endswith("…")


def test_a_slack_link_percent_encodes_what_would_end_it() -> None:
    assert slack_format.link("https://x.test/a|b>c", "Open") == "<https://x.test/a%7Cb%3Ec|Open>"


# --- Discord --------------------------------------------------------------------------------------


def check_discord(body: dict[str, Any]) -> None:
    assert isinstance(body["content"], str) and 0 < units(body["content"]) <= 2000
    assert body["allowed_mentions"] == {"parse": []}
    assert len(body["embeds"]) <= 10
    for embed in body["embeds"]:
        total = units(embed.get("title", "")) + units(embed.get("footer", {}).get("text", ""))
        assert units(embed.get("title", "")) <= 256
        assert isinstance(embed["color"], int) and 0 <= embed["color"] <= 0xFFFFFF
        assert len(embed["fields"]) <= 25
        for field in embed["fields"]:
            assert 0 < units(field["name"]) <= 256 and 0 < units(field["value"]) <= 1024
            total += units(field["name"]) + units(field["value"])
        assert units(embed["footer"]["text"]) <= 2048
        assert total <= 6000
        datetime.fromisoformat(embed["timestamp"])


@pytest.mark.parametrize("event", [RAISED, RESOLVED])
def test_discord_messages_have_content_one_embed_and_no_mentions(event: Any) -> None:
    body = body_of("discord", event)
    check_discord(body)
    assert "\\@here" in body["content"] or event is RESOLVED
    assert "\\*invoices\\*" in body["content"]


def test_discord_caps_every_text_even_when_all_of_it_is_huge() -> None:
    huge = "@everyone " + "🚨" * 5000  # each counts two UTF-16 units
    event = raised(1, scenario_name=huge, execution_id="e" * 5000).model_copy(
        update={"message": huge}
    )
    body = body_of("discord", event)
    check_discord(body)
    assert body["content"].endswith("…")


# --- Teams ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [RAISED, RESOLVED])
def test_teams_messages_carry_one_adaptive_card_1_4(event: Any) -> None:
    body = body_of("teams", event)
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert {element["type"] for element in card["body"]} <= {"TextBlock", "FactSet"}
    for element in card["body"]:
        if element["type"] == "FactSet":
            assert all(set(f) == {"title", "value"} for f in element["facts"])
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl" and action["url"].startswith("https://")
    assert ("actions" in card) == (event is RAISED)  # only RAISED has the run's URL


def test_a_teams_card_stays_far_below_teams_size_limit() -> None:
    huge = "- [x](javascript:alert(1)) {{DATE(2026-01-01T00:00:00Z, SHORT)}} " * 2000
    event = raised(1, scenario_name=huge).model_copy(update={"message": huge})
    rendered = render_format("teams", event, context())
    assert len(rendered.body) < 28 * 1024
    text = orjson.loads(rendered.body)["attachments"][0]["content"]["body"][1]["text"]
    assert text.startswith("\\- \\[x\\](javascript:alert(1)) \\{\\{DATE(")


# --- text -----------------------------------------------------------------------------------------


@given(st.text(max_size=300), st.integers(min_value=1, max_value=120))
def test_fit_never_exceeds_its_cap_nor_splits_an_escape(text: str, limit: int) -> None:
    out = fit(text, limit, slack_format.escape)
    assert units(out) <= limit
    if out.endswith("…"):
        assert "&" not in out.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
    else:
        assert out == slack_format.escape(text)


def test_invisible_and_control_characters_are_made_visible() -> None:
    assert visible("a\u202eb\x1bc\nd") == "a\\u202eb\\u001bc\nd"


# --- headers --------------------------------------------------------------------------------------


def test_headers_parse_with_blanks_trimmed_and_repeats_kept() -> None:
    assert parse_headers(["Authorization: Bearer t0k:en", "X-Tag:a", "X-Tag:  b ", "X-Empty:"]) == (
        ("Authorization", "Bearer t0k:en"),
        ("X-Tag", "a"),
        ("X-Tag", "b"),
        ("X-Empty", ""),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Authorization Bearer s3cret", "'Authorization…': expected 'Name: value' (no colon)"),
        (": s3cret", "the header name is empty"),
        ("X Key: s3cret", "'X…': not a valid header name"),
        ("X-Key: s3cret\r\nX-Evil: 1", "X-Key: the value holds CR, LF or another control"),
        ("X-Key: s3cret\n", "X-Key: the value holds CR, LF"),
        ("X-Key: s3cr\x00et", "X-Key: the value holds CR, LF"),
        ("X-Key: sécret", "X-Key: the value is not ASCII"),
        ("Host: s3cret.example", "Host: refused, the HTTP client sets it"),
        ("content-length: 5", "content-length: refused, the HTTP client sets it"),
        ("Transfer-Encoding: chunked", "refused, the HTTP client sets it"),
        ("Connection: close", "refused, the HTTP client sets it"),
        ("Content-Type: text/plain", "Content-Type: refused, it is set by --webhook-format"),
        ("Webhook-Signature: v1,x", "refused, it is set by --webhook-secret-file"),
    ],
)
def test_a_bad_header_is_one_line_naming_it_and_never_its_value(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_header(text)
    assert str(caught.value).startswith("--webhook-header ")
    assert message in str(caught.value)
    assert "s3cr" not in str(caught.value) and "\n" not in str(caught.value)


async def test_the_sink_sends_the_extra_headers_with_the_formats_content_type() -> None:
    async with Receiver().running() as receiver:
        headers = parse_headers(["Authorization: Bearer abc", "X-Team: ops"])
        sink = WebhookSink(receiver.url, format="cloudevents", headers=headers)
        async with started(sink):
            sink.offer(raised(1))
            await until(lambda: len(receiver.accepted) == 1)
    [head] = receiver.heads
    assert head["authorization"] == "Bearer abc" and head["x-team"] == "ops"
    assert head["content-type"] == "application/cloudevents+json"
    assert "webhook-signature" not in head


# --- Standard Webhooks ----------------------------------------------------------------------------


async def test_signed_requests_verify_with_standard_webhooks_and_a_retry_keeps_its_id() -> None:
    async with Receiver().running() as receiver:
        receiver.status = 503
        # A fast clock (sim, benchmarks) must not skew the signature's timestamp.
        sink = WebhookSink(
            receiver.url,
            format="slack",
            signer=Signer.from_text(SECRET),
            backoff=FAST,
            clock=Clock(speed=1000),
        )
        async with started(sink):
            sink.offer(RAISED)
            await until(lambda: len(receiver.requests) >= 2)
            receiver.status = 200
            await until(lambda: len(receiver.accepted) == 1)
    for (_, body), head in zip(receiver.requests, receiver.heads, strict=True):
        assert Webhook(SECRET).verify(body, head) == orjson.loads(body)
        assert head["webhook-id"] == message_id(RAISED)
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(body + b" ", head)
        with pytest.raises(WebhookVerificationError):
            Webhook(OTHER_SECRET).verify(body, head)
    assert len({head["webhook-id"] for head in receiver.heads}) == 1


def test_during_a_rotation_each_secret_signs_and_either_verifies() -> None:
    signer = Signer.from_text(f"{SECRET}\n\n{OTHER_SECRET}\n")
    body = render_format("json", RAISED, context()).body
    headers = dict(signer.headers("msg_1", body, time.time()))
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (SECRET, OTHER_SECRET):
        Webhook(secret).verify(body, headers)


def test_the_secret_file_is_read_within_its_cap_and_never_quoted(tmp_path: Path) -> None:
    good = tmp_path / "secret"
    good.write_text(SECRET + "\n")
    assert repr(Signer.from_file(good)) == "Signer(1 secret)"
    cases = {
        "empty": ("\n", "the file is empty"),
        "bare": ("c2VjcmV0c2VjcmV0\n", "line 1: expected a secret of the form whsec_<base64>"),
        "broken": ("whsec_not*base64!!\n", "line 1: the part after whsec_ is not base64"),
        "second": (f"{SECRET}\nwhsec_\n", "line 2: the secret is empty"),
        "huge": ("whsec_" + "A" * TOKEN_MAX_BYTES, "larger than 64 KiB, the limit for it"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(UsageError) as caught:
            Signer.from_file(path)
        assert str(caught.value).startswith(f"--webhook-secret-file {path}")
        assert message in str(caught.value)
        assert "c2VjcmV0" not in str(caught.value) and "base64!!" not in str(caught.value)
    with pytest.raises(UsageError, match="no such file"):
        Signer.from_file(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a regular file"):
        Signer.from_file(tmp_path)


# --- refusals -------------------------------------------------------------------------------------


async def test_a_refusal_names_the_receiver_status_cause_and_answer_but_no_secret() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 400
        # Some receivers echo the request path, which holds the hook's secret.
        receiver.answer = b"invalid_blocks for /hooks/T0SECRET/abc?token=QUERYSECRET\x1b[2J"
        url = f"{receiver.url}/hooks/T0SECRET/abc?token=QUERYSECRET"
        sink = WebhookSink(url, format="slack", on_error=errors.append, backoff=FAST)
        async with started(sink):
            sink.offer(raised(1))
            await until(lambda: len(errors) == 1)
            receiver.status, receiver.answer = 200, b"ok"
            sink.offer(raised(2))
            await until(lambda: len(receiver.accepted) == 1)
    assert errors == [
        f"webhook http://127.0.0.1:{receiver.port}/…: 400 Bad Request (the receiver refused the "
        'payload: is --webhook-format right?); it answered "invalid_blocks for /hooks/…/abc?'
        'token=… [2J"; alert consecutive_failures:1 dropped, not retried'
    ]
    assert len(receiver.requests) == 2  # refused once, not retried; the next one went through


def test_each_final_status_has_its_own_hint() -> None:
    slack_url = "https://hooks.slack.com/services/T0/B0/XYZ"
    assert hint(400, "json", slack_url).endswith(
        "is --webhook-format right? The URL looks like Slack's: --webhook-format slack"
    )
    assert hint(400, "slack", slack_url).endswith("is --webhook-format right?")
    assert "credentials" in hint(403, "json", slack_url)
    assert "no such webhook" in hint(404, "json", slack_url)
    assert "redirects" in hint(301, "json", slack_url)
    failure = Failure("HTTP 499", retry=False, status=499, said=b"\xff\xfe nope ")
    assert refusal(failure, "json", slack_url) == (
        '499 (the receiver refused the request); it answered "nope"'
    )
    assert said(b"x" * 1000, slack_url) == "x" * 159 + "…"


def test_well_known_receivers_are_recognised_from_their_urls() -> None:
    assert guess_format("https://hooks.slack.com/services/T0/B0/X") == "slack"
    assert guess_format("https://discord.com/api/webhooks/1/abc") == "discord"
    assert guess_format("https://acme.webhook.office.com/webhookb2/x") == "teams"
    assert guess_format("https://prod-01.westeurope.logic.azure.com/workflows/x") == "teams"
    assert guess_format("https://discord.com/channels/1") is None
    assert guess_format("http://127.0.0.1:9000/hook") is None


# --- options --------------------------------------------------------------------------------------


def test_the_cli_options_build_a_configured_sink(tmp_path: Path) -> None:
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET)
    options = WebhookOptions.from_cli(
        "https://hooks.slack.com/services/T0/B0/XYZ",
        format="slack",
        headers=["X-Team: ops"],
        secret_file=secret_file,
    )
    assert (options.format, options.headers) == ("slack", (("X-Team", "ops"),))
    assert SECRET[6:] not in repr(options)
    errors: list[str] = []
    sink = build_webhook_sink(options, on_error=errors.append)
    assert (sink.url, sink.format, sink.headers, sink.signer) == (
        options.url, "slack", options.headers, options.secret,
    )  # fmt: skip
    sink.report("x")
    sink.outbox.dispose()  # never run: nothing else would close its queue
    assert errors == ["webhook https://hooks.slack.com/…: x"]
    assert WebhookOptions.from_cli("http://h").format == "json"
    with pytest.raises(UsageError, match="--webhook-format: unknown format"):
        WebhookOptions.from_cli("http://h", format="xml")
    with pytest.raises(ValueError, match="webhook URL must start with http"):
        build_webhook_sink(WebhookOptions("ftp://h"))

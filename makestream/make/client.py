"""The async Make API client: one typed method per endpoint makestream uses.

Every request waits for the shared `Budget` (except `POST /run`, which Make exempts from the
organization limit), is retried with backoff when the failure is transient, and ends either in a
model or in one of makestream's typed errors. An optional observer hears about every request,
retry and 429, which is how the engine emits `api.throttled` and how metrics count requests.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx

from makestream import __version__
from makestream.clock import Clock
from makestream.errors import (
    AuthError,
    MonitorError,
    NotFoundError,
    PayloadError,
    RateLimitError,
    ServerError,
    TransportError,
    UsageError,
)
from makestream.limits import ERROR_BODY_MAX_BYTES, RESPONSE_MAX_BYTES, RETRY_AFTER_MAX_S
from makestream.make import payloads, shapes
from makestream.make.auth import ZONES, Token, base_url_for
from makestream.make.budget import Budget, Priority
from makestream.make.failures import error_from_transport, errors_from_response, payload_error
from makestream.make.models import (
    Blueprint,
    Dlq,
    DlqBundleEntry,
    ExecutionDetail,
    ExecutionLog,
    LogPage,
    ModuleLogPage,
    Organization,
    Problem,
    RunResult,
    Scenario,
    ScenarioInterface,
    Team,
    Trigger,
    User,
)

__all__ = [
    "ZONES",
    "ApiNotice",
    "MakeClient",
    "RetryPolicy",
    "Token",
    "base_url_for",
    "errors_from_response",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
# The query as ordered pairs: `id[]` repeats, and httpx encodes the brackets.
Params = list[tuple[str, str | int | float | bool | None]]

# Make holds a responsive run open for up to 40 s before answering; wait a little longer.
_RESPONSIVE_TIMEOUT_S = 50.0
# Long id lists go in several requests: every id is a query parameter, and URLs have limits.
_IDS_PER_REQUEST = 100
# Problems remembered as said (`_problems`; forgotten all at once past this many).
SAID_MAX = 1_000


@dataclass(frozen=True)
class ApiNotice:
    """What the client tells its observer: a request answered, a retry planned, a 429."""

    # "payload": an answer's entry that could not be read in full (`error` says which, and
    # whether a field was taken as absent or the entry left out).
    kind: Literal["request", "retry", "throttled", "payload"]
    method: str
    path: str  # relative to the API base, without the query string
    status: int | None = None  # None when no answer came
    retry_in_s: float | None = None  # clock seconds until the retry or the end of the pause
    error: str | None = None  # the one-line error, when the request failed
    # The Retry-After the server sent, when it asked for longer than RETRY_AFTER_MAX_S and
    # was cut to it (None otherwise).
    asked_s: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried; delays are in clock seconds."""

    attempts: int = 4  # tries in all, the first included
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2  # ± this fraction, so that many callers do not retry in step
    # Clock seconds after the first try past which no retry starts: one-shot commands give up
    # within a bounded time (ONE_SHOT), following watches keep going (None).
    give_up_s: float | None = None

    def backoff(self, failed_attempt: int, rng: random.Random) -> float:
        """The delay after the `failed_attempt`-th try (1-based) failed."""
        delay = min(self.max_delay, self.base * self.factor ** (failed_attempt - 1))
        return max(0.0, delay * (1 + self.jitter * rng.uniform(-1.0, 1.0)))


# One-shot commands (`--no-follow`, `state`, `flow`, `thresholds test`): three tries of a request,
# and none started more than a minute after the first. Each try is also bounded as a whole
# (ONE_SHOT_TIMEOUT_S real seconds, not per read), so a hung or trickling server cannot hold them.
ONE_SHOT = RetryPolicy(attempts=3, give_up_s=60.0)
ONE_SHOT_TIMEOUT_S = 20.0


class MakeClient:
    """An async client for one Make zone (or the simulator) and one token."""

    def __init__(
        self,
        base_url: str,
        token: Token | None,
        *,
        budget: Budget | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        observer: Callable[[ApiNotice], None] | None = None,
        user_agent: str = f"makestream/{__version__}",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if clock is None:
            clock = budget.clock if budget is not None else Clock()
        self.clock = clock
        self.budget = budget if budget is not None else Budget(clock=clock)
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout  # real seconds: it bounds a network wait, not a clock wait
        self._token = token
        self._observer = observer
        # Unreadable entries, and kinds of unreadable field, already said (`_problems`).
        self._said: set[tuple[str, str, str]] = set()
        self._rng = random.Random()
        url = httpx.URL(self.base_url)
        # host:port in messages: "no answer from 127.0.0.1:8080" says which server it was.
        self._host = f"{url.host}:{url.port}" if url.port else (url.host or self.base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            # A CDN in front of Make has refused library default User-Agents (make-api.md §3).
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"MakeClient({self.base_url!r}, token={self._token!r})"

    @property
    def token_fingerprint(self) -> str:
        """A short digest naming the token (never the token), to tell accounts apart."""
        return self._token.fingerprint() if self._token is not None else "none"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- organizations, teams, user ----------------------------------------------------------

    async def organizations(self, *, priority: Priority = Priority.NORMAL) -> list[Organization]:
        return await self._get(
            "/organizations",
            lambda body: shapes.many(body, Organization, "organizations"),
            priority=priority,
            scope="organizations:read",
        )

    async def organization(
        self, organization_id: int, *, priority: Priority = Priority.NORMAL
    ) -> Organization:
        """One organization, with `api_limit` (its license.apiLimit) when Make sends it."""
        return await self._get(
            f"/organizations/{int(organization_id)}",
            lambda body: shapes.one(body, Organization, "organization"),
            priority=priority,
            scope="organizations:read",
        )

    async def teams(
        self, organization_id: int, *, priority: Priority = Priority.NORMAL
    ) -> list[Team]:
        return await self._get(
            "/teams",
            lambda body: shapes.many(body, Team, "teams"),
            params=[("organizationId", int(organization_id))],
            priority=priority,
            scope="teams:read",
        )

    async def me(self, *, priority: Priority = Priority.NORMAL) -> User:
        return await self._get(
            "/users/me",
            lambda body: shapes.one(body, User, "authUser", "user"),
            priority=priority,
            scope="user:read",
        )

    # --- scenarios ---------------------------------------------------------------------------

    async def scenarios(
        self,
        *,
        team_id: int | None = None,
        organization_id: int | None = None,
        ids: Sequence[int] | None = None,
        page_size: int = 100,
        priority: Priority = Priority.NORMAL,
    ) -> list[Scenario]:
        """Every scenario of a team or an organization (optionally only `ids`), all pages."""
        if (team_id is None) == (organization_id is None):
            raise UsageError("give exactly one of team_id or organization_id to list scenarios")
        if page_size < 1:
            raise UsageError(f"page_size must be at least 1, not {page_size}")
        owner: Params = (
            [("teamId", int(team_id))]
            if team_id is not None
            else [("organizationId", int(organization_id or 0))]
        )
        if ids is None:
            batches: list[list[int]] = [[]]
        else:
            wanted = list(dict.fromkeys(int(i) for i in ids))
            batches = [
                wanted[i : i + _IDS_PER_REQUEST] for i in range(0, len(wanted), _IDS_PER_REQUEST)
            ]
        found: dict[int, Scenario] = {}
        for batch in batches:
            offset = 0
            unreadable = 0  # full pages in a row of which no entry could be read
            while True:
                # Sort by id: offset paging over Make's default "proprietary" order could skip
                # or repeat scenarios when that order shifts between pages.
                params: Params = [
                    *owner,
                    *(("id[]", i) for i in batch),
                    ("pg[offset]", offset),
                    ("pg[limit]", page_size),
                    ("pg[sortBy]", "id"),
                    ("pg[sortDir]", "asc"),
                ]
                (page, size, problems), pg = await self._get(
                    "/scenarios",
                    lambda body: (shapes.many_lenient(body, Scenario, "scenarios"),
                                  shapes.page(body)),
                    params=params,
                    priority=priority,
                    scope="scenarios:read",
                )
                self._problems("/scenarios", problems)
                new = [s for s in page if s.id not in found]
                found.update((s.id, s) for s in new)
                # The largest `pg[limit]` Make accepts is unknown: a server that caps it says so
                # in `pg.limit`, and a page that full is not the last one.
                capped = pg.limit if pg is not None and (pg.limit or 0) > 0 else None
                full = min(page_size, capped) if capped is not None else page_size
                # A page with nothing new means the server ignores the offset: stop, not loop.
                # (A full page of entries none of which could be read is paged past, a few
                # times at most: the same page again and again would be an offset ignored.)
                unreadable = unreadable + 1 if size and not page else 0
                if size < full or (not new and (page or unreadable > 3)):
                    break
                offset += size
        return list(found.values())

    async def scenario(self, scenario_id: int, *, priority: Priority = Priority.NORMAL) -> Scenario:
        return await self._get(
            f"/scenarios/{int(scenario_id)}",
            lambda body: shapes.one(body, Scenario, "scenario"),
            priority=priority,
            scope="scenarios:read",
        )

    async def blueprint(
        self, scenario_id: int, *, priority: Priority = Priority.NORMAL
    ) -> Blueprint:
        return await self._get(
            f"/scenarios/{int(scenario_id)}/blueprint",
            shapes.blueprint,
            priority=priority,
            scope="scenarios:read",
        )

    async def triggers(
        self, scenario_id: int, *, priority: Priority = Priority.NORMAL
    ) -> list[Trigger]:
        """The scenario's triggers; `queue_count` is the webhook queue depth."""
        return await self._get(
            f"/scenarios/{int(scenario_id)}/triggers",
            shapes.triggers,
            priority=priority,
            scope="scenarios:read",
        )

    async def queue_depth(
        self, scenario_id: int, *, priority: Priority = Priority.NORMAL
    ) -> int | None:
        """The webhook queue depth (the triggers' `queue_count`s), or None where Make will not
        tell: `GET …/triggers` refused (403) or absent (404) for this token or this API. A
        token Make does not accept (401) still raises."""
        try:
            triggers = await self.triggers(scenario_id, priority=priority)
        except (AuthError, NotFoundError) as exc:
            if exc.status == 401:
                raise
            return None
        return sum(t.queue_count for t in triggers)

    async def interface(
        self, scenario_id: int, *, priority: Priority = Priority.NORMAL
    ) -> ScenarioInterface:
        """The scenario's declared inputs (what `run(data=...)` must carry) and outputs."""
        return await self._get(
            f"/scenarios/{int(scenario_id)}/interface",
            lambda body: shapes.one(body, ScenarioInterface, "interface"),
            priority=priority,
            scope="scenarios:read",
        )

    # --- executions --------------------------------------------------------------------------

    async def logs(
        self,
        scenario_id: int,
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
        status: int | None = None,
        limit: int = 50,
        last: str | None = None,
        show_last: bool | None = None,
        sort_dir: str | None = None,
        show_check_runs: bool | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> LogPage:
        """One page of the scenario's execution history; page on with `pg.last` as `last`."""
        params: Params = [("pg[limit]", int(limit))]
        if from_ms is not None:
            params.append(("from", int(from_ms)))
        if to_ms is not None:
            params.append(("to", int(to_ms)))
        if status is not None:
            params.append(("status", int(status)))
        if last is not None:
            params.append(("pg[last]", last))
        if show_last is not None:
            params.append(("pg[showLast]", _flag(show_last)))
        if sort_dir is not None:
            params.append(("pg[sortDir]", sort_dir))
        if show_check_runs is not None:
            params.append(("showCheckRuns", _flag(show_check_runs)))
        path = f"/scenarios/{int(scenario_id)}/logs"
        page = await self._get(
            path, shapes.log_page, params=params, priority=priority, scope="scenarios:read"
        )
        self._problems(path, page.problems)
        return page

    async def recent_logs(
        self, scenario_id: int, count: int, *, priority: Priority = Priority.NORMAL
    ) -> list[ExecutionLog]:
        """The scenario's newest `count` log entries (fewer if it has fewer), newest first.

        Pages on from the last entry's `imtId`, not from `pg.last`: in Make's own example
        `pg.last` is not the page's last entry, and a server may echo the cursor it was given.
        A page that brings nothing new (a server that ignores `pg[last]`) ends it."""
        entries: list[ExecutionLog] = []
        seen: set[str] = set()
        cursor: str | None = None
        while len(entries) < count:
            page = await self.logs(scenario_id, limit=min(100, count - len(entries)),
                                   last=cursor, sort_dir="desc", priority=priority)
            fresh = [e for e in page.items if e.id not in seen]
            seen.update(e.id for e in fresh)
            entries += fresh
            cursor = page.last_imt_id
            if not fresh or cursor is None:
                break
        return entries[:count]

    async def log(
        self, scenario_id: int, execution_id: str, *, priority: Priority = Priority.NORMAL
    ) -> ExecutionLog:
        return await self._get(
            f"/scenarios/{int(scenario_id)}/logs/{_segment(execution_id)}",
            lambda body: shapes.one(body, ExecutionLog, "scenarioLog"),
            priority=priority,
            scope="scenarios:read",
        )

    async def execution(
        self, scenario_id: int, execution_id: str, *, priority: Priority = Priority.NORMAL
    ) -> ExecutionDetail:
        """A run's status (RUNNING until it ends), outputs and error."""
        return await self._get(
            f"/scenarios/{int(scenario_id)}/executions/{_segment(execution_id)}",
            shapes.execution_detail,
            priority=priority,
            scope="scenarios:read",
        )

    async def run(
        self,
        scenario_id: int,
        *,
        data: Mapping[str, Any] | None = None,
        responsive: bool = False,
        callback_url: str | None = None,
        priority: Priority = Priority.URGENT,
    ) -> RunResult:
        """Start a run. Not budgeted: Make exempts `POST /run` from the organization limit.

        Retried only when Make cannot have started the run (no connection, or a 429): a retry
        after a timeout or a 5xx could start the scenario twice. `priority` is accepted for a
        uniform call signature; it has no budget to order.
        """
        del priority
        body: dict[str, Any] = {"data": dict(data or {}), "responsive": responsive}
        if callback_url is not None:
            body["callbackUrl"] = callback_url
        return await self._call(
            "POST",
            f"/scenarios/{int(scenario_id)}/run",
            lambda payload: RunResult.model_validate(payload),
            json=body,
            scope="scenarios:run",
            budgeted=False,
            idempotent=False,
            http_timeout=max(self.timeout, _RESPONSIVE_TIMEOUT_S) if responsive else None,
        )

    async def module_logs(
        self,
        scenario_id: int,
        module_id: int,
        *,
        limit: int = 50,
        last: str | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> ModuleLogPage:
        """One page of one module's outcomes across runs (not filterable by execution)."""
        params: Params = [("pg[limit]", int(limit))]
        if last is not None:
            params.append(("pg[last]", last))
        path = f"/scenarios/{int(scenario_id)}/modules/{int(module_id)}/logs"
        page = await self._get(
            path, shapes.module_log_page, params=params, priority=priority,
            scope="scenarios:read",
        )
        self._problems(path, page.problems)
        return page

    async def dlqs(self, scenario_id: int, *, priority: Priority = Priority.NORMAL) -> list[Dlq]:
        """The scenario's incomplete executions."""
        return await self._get(
            "/dlqs",
            lambda body: shapes.many(body, Dlq, "dlqs"),
            params=[("scenarioId", int(scenario_id))],
            priority=priority,
            scope="dlqs:read",
        )

    async def dlq_bundle(
        self, dlq_id: str, *, priority: Priority = Priority.NORMAL
    ) -> dict[str, DlqBundleEntry]:
        """Per-module error or value of an incomplete execution, keyed by module id."""
        return await self._get(
            f"/dlqs/{_segment(dlq_id)}/bundle",
            shapes.dlq_bundle,
            priority=priority,
            scope="dlqs:read",
        )

    # --- the request loop --------------------------------------------------------------------

    async def _get(
        self,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Params | None = None,
        priority: Priority,
        scope: str,
    ) -> T:
        return await self._call("GET", path, parse, params=params, priority=priority, scope=scope)

    async def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Params | None = None,
        json: Any = None,
        priority: Priority = Priority.NORMAL,
        scope: str | None = None,
        budgeted: bool = True,
        idempotent: bool = True,
        http_timeout: float | None = None,
    ) -> T:
        failed = 0
        first_try = self.clock.now()
        while True:
            if budgeted:
                await self.budget.acquire(priority)
            try:
                result = await self._once(method, path, parse, params, json, scope, http_timeout)
            except MonitorError as err:
                if budgeted and not isinstance(err, RateLimitError):
                    self.budget.succeeded()  # Make answered, so the limit is not spent
                failed += 1
                err.tries = failed
                wait = self._plan_retry(err, failed, idempotent)
                give_up = self.retry.give_up_s
                late = give_up is not None and wait is not None \
                    and self.clock.now() + wait - first_try > give_up
                if late:
                    wait = None
                if isinstance(err, RateLimitError):
                    # The organization's limit is spent for every caller: pause them all.
                    asked = err.retry_after
                    cut = asked if asked is not None and asked > RETRY_AFTER_MAX_S else None
                    pause = self.budget.throttled(
                        None if asked is None else min(asked, RETRY_AFTER_MAX_S)
                    )
                    await self.budget.share_pause()
                    wait = None if wait is None else pause
                    self._notify(
                        ApiNotice("throttled", method, path, 429, pause, str(err), asked_s=cut)
                    )
                elif wait is not None:
                    status = getattr(err, "status", None)
                    self._notify(ApiNotice("retry", method, path, status, wait, str(err)))
                if wait is None:
                    if err.transient and failed > 1:
                        err.args = (f"{err} (gave up after {failed} tries)",)
                    raise
                log.debug("%s %s: retrying in %.1f s after: %s", method, path, wait, err)
                await self.clock.sleep(wait)
            else:
                if budgeted:
                    self.budget.succeeded()
                return result

    def _plan_retry(self, err: MonitorError, failed: int, idempotent: bool) -> float | None:
        """Clock seconds before the next try, or None to give up."""
        if not err.transient or failed >= self.retry.attempts:
            return None
        if not idempotent and not _surely_not_sent(err):
            return None
        if isinstance(err, ServerError) and err.retry_after is not None:
            return min(err.retry_after, RETRY_AFTER_MAX_S)
        return self.retry.backoff(failed, self._rng)

    async def _once(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        params: Params | None,
        json: Any,
        scope: str | None,
        http_timeout: float | None,
    ) -> T:
        endpoint = f"{method} {path}"
        headers = {"Authorization": self._token.header()} if self._token is not None else {}
        limit = self.timeout if http_timeout is None else http_timeout
        try:
            # httpx's timeout bounds each read; the deadline bounds the whole exchange, so that
            # a server trickling a byte at a time cannot hold the request forever.
            with anyio.fail_after(limit):
                request = self._http.build_request(
                    method, path, params=params, json=json, headers=headers, timeout=limit
                )
                streamed = await self._http.send(request, stream=True)
                try:
                    response = await _read_capped(streamed, endpoint)
                finally:
                    await streamed.aclose()
        except TimeoutError:
            err = TransportError(
                f"no answer from {self._host}: no complete answer within {limit:g} s ({endpoint})"
            )
            self._notify(ApiNotice("request", method, path, None, None, str(err)))
            raise err from None
        except httpx.RequestError as exc:
            err = error_from_transport(exc, endpoint=endpoint, host=self._host)
            self._notify(ApiNotice("request", method, path, None, None, str(err)))
            raise err from exc
        except PayloadError as err:
            self._notify(ApiNotice("request", method, path, streamed.status_code, None, str(err)))
            raise
        log.debug("%s %s -> %d", method, path, response.status_code)
        secret = self._token.reveal() if self._token is not None else None
        if not response.is_success:
            error = errors_from_response(
                response, endpoint=endpoint, secret=secret, scope=scope, now=self.clock.now()
            )
            self._notify(ApiNotice("request", method, path, response.status_code, None, str(error)))
            raise error
        self._notify(ApiNotice("request", method, path, response.status_code))
        body = payloads.decode(response.content, endpoint=endpoint)
        try:
            return parse(body)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # JSONDecodeError and pydantic's ValidationError are ValueErrors; the others are
            # what a model validator can still trip over on a body nobody foresaw.
            raise payload_error(exc, endpoint=endpoint) from exc

    def _problems(self, path: str, problems: list[Problem]) -> None:
        """Tell the observer, once each, of the entries of an answer that could not be read in
        full (every later read lists them again): each entry left out (a run or a scenario
        missing), and each kind of field taken as absent once per endpoint (a field Make sends
        in a form never seen would otherwise be said again for every run)."""
        for problem in problems:
            said = (path, problem.fields, problem.reason) if problem.fields else (
                path, "", str(problem))
            if said in self._said:
                continue
            if len(self._said) >= SAID_MAX:
                self._said.clear()
            self._said.add(said)
            self._notify(ApiNotice("payload", "GET", path, 200, None,
                                   f"Make answered GET {path} with an entry that cannot be "
                                   f"read in full: {problem}"))

    def _notify(self, notice: ApiNotice) -> None:
        if self._observer is None:
            return
        try:
            self._observer(notice)
        except Exception:
            # An observer is a sink; a failing sink must never stop the stream.
            log.warning("API observer failed on a %s notice", notice.kind, exc_info=True)


async def _read_capped(response: httpx.Response, endpoint: str) -> httpx.Response:
    """The streamed `response` read into memory, refusing a body over RESPONSE_MAX_BYTES.

    The cap counts decoded bytes, so a small compressed body cannot inflate past it either.
    An error answer is cut at ERROR_BODY_MAX_BYTES instead: only its first line matters.
    """
    cap = RESPONSE_MAX_BYTES if response.is_success else ERROR_BODY_MAX_BYTES
    too_big = PayloadError(
        f"Make answered {endpoint} with a body over {RESPONSE_MAX_BYTES // (1024 * 1024)} MiB, "
        "the limit"
    )
    declared = response.headers.get("content-length", "")
    if response.is_success and declared.isascii() and declared.isdigit() and (
        len(declared) > 15 or int(declared) > cap
    ):
        raise too_big
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            if response.is_success:
                raise too_big
            break
    content = b"".join(chunks)[:cap]
    # A fresh response holds the decoded bytes: drop the headers that described the wire form.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=response.request,
        extensions={
            k: v for k, v in response.extensions.items() if k in ("reason_phrase", "http_version")
        },
    )


def _surely_not_sent(err: MonitorError) -> bool:
    """True when Make cannot have acted on the request: refused (429) or never connected."""
    if isinstance(err, RateLimitError):
        return True
    return isinstance(err, TransportError) and isinstance(
        err.__cause__, httpx.ConnectError | httpx.ConnectTimeout
    )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _segment(value: str) -> str:
    # Ids come from Make's answers or the command line; keep them one path segment.
    return quote(str(value), safe="")

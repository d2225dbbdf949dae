"""Setting a watch up: the organization, the target scenarios, and where each one starts.

Before the workers begin, `WatchStartup._setup` reads the organization (its request limit and web
host), resolves the scenarios to watch (ids, or a team with --include/--exclude), adopts each at
the position the options ask for, emits `stream.opened` and plans the first sweeps and queue-depth
reads. With --run or --execution, `_start_target` then starts or picks up the one run to follow.
`add_scenarios` adopts more scenarios while the stream runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit

import anyio

from makestream import __version__
from makestream.engine.base import LOG_PAGE, WatchBase
from makestream.engine.cursor import Cursor, short_id
from makestream.engine.history import seed
from makestream.engine.poller import Action
from makestream.errors import ApiError, AuthError, MakestreamError, NotFoundError, UsageError
from makestream.events import StreamOpened
from makestream.make.budget import Priority
from makestream.make.models import Scenario

# Stored runs replayed between two raises of a scenario's floor (see `_replay_stored`).
REPLAY_STEP = 64


class WatchStartup(WatchBase):
    """The set-up part of `Watch`."""

    async def _setup(self) -> Scenario | None:
        """Resolve targets and positions; returns the scenario of --run/--execution, if any."""
        opts = self.options
        if opts.api_limit is not None and opts.team_id is None and opts.scenario_ids:
            # The limit is known: the organization (for its web host and one listing for every
            # team) can wait until the logs have been read once.
            self.client.budget.set_limit(opts.api_limit)
            self.tracker.ui_base = f"https://{urlsplit(self.client.base_url).netloc}"
            self.schedule.later.append(Action("organization", priority=Priority.HIGH))
            self.schedule.later_since = self.clock.now()
        else:
            await self._read_organization()
        scenarios = await self._resolve_targets()
        if opts.resume is not None:
            self.tracker.restore(opts.resume)
        budget = self.client.budget.snapshot()
        # (Before adopting: the first queue reads are spaced by it.)
        self.schedule.rate_per_s = budget.rate_per_min / 60
        for scenario in scenarios:
            await self._adopt(scenario)
        self.emit(
            [
                StreamOpened(
                    targets=[s.id for s in scenarios],
                    api_limit=budget.limit_per_min,
                    budget_per_min=round(budget.limit_per_min * budget.share, 2),
                    follow=opts.follow,
                    version=__version__,
                    budget_processes=budget.processes,
                )
            ]
        )
        if opts.resume is not None and opts.runs is not None and not (
            opts.run or opts.execution_id
        ):
            await self._replay_stored(opts.resume)
        if opts.snapshot:
            from makestream.engine.snapshot import read_snapshot

            self.emit(await read_snapshot(self.client, scenarios, self.tracker))
        if opts.blueprints and len(scenarios) <= 10:
            # For the live view's module flow: cheap for a few scenarios, pointless for many,
            # and worth less than any read that can find a run.
            for scenario in scenarios:
                self._pending += 1  # a follow-up like any other (see _FOLLOW_UPS in engine.watch)
                self.schedule.later.append(
                    Action("blueprint", scenario.id, priority=Priority.HIGH)
                )
                self.schedule.later_since = self.clock.now()
        if opts.run or opts.execution_id:
            return scenarios[0]
        self.schedule.following = opts.follow
        self.schedule.rescans = opts.follow
        if opts.follow:
            # The listing that resolved the targets counts as the first sweep.
            self.schedule.sweep_groups(self._sweep_groups(), self.clock.now())
        return None

    async def _replay_stored(self, resume: Cursor) -> None:
        """Report, from the history store, the runs a resumed cursor owes in the spans the store
        holds complete, and move each scenario's floor past them: its first scan then reads
        Make's logs only from there on (no page, no error detail for the stored runs)."""
        source = self.options.runs
        assert source is not None
        # Only the scenarios this watch follows: a cursor may name more.
        floors = {sid: state.position.floor_ms for sid, state in self.tracker.scenarios.items()
                  if sid in resume.positions and sid in self.schedule.scans}
        if not floors:
            return
        found = await anyio.to_thread.run_sync(source.covered, floors)
        for sid in sorted(found):
            covered = found[sid]
            state = self.tracker.scenarios.get(sid)
            if state is None or covered.until_ms <= state.position.floor_ms:
                continue
            unconfirmed = set(state.position.done)
            runs = covered.runs
            for i, (log_ms, event) in enumerate(runs):
                if event.scenario_id != sid or not event.execution_id:
                    continue
                unconfirmed.discard(short_id(event.execution_id))
                reported = self.tracker.replayed(sid, event, log_ms)
                self.stored_replays += len(reported)
                self.emit(reported)
                following = runs[i + 1][0] if i + 1 < len(runs) else covered.until_ms
                if i % REPLAY_STEP == REPLAY_STEP - 1 and following > log_ms:
                    # Every run listed up to here is reported: the cursor need not list them
                    # (every so often, so that neither the cursor nor the work grows with the
                    # number of runs replayed).
                    self.tracker.covered(sid, min(log_ms + 1, covered.until_ms), unconfirmed)
            self.tracker.covered(sid, covered.until_ms, unconfirmed)

    async def add_scenarios(self, scenario_ids: Iterable[int]) -> None:
        """Start watching more scenarios while the stream runs (the SSE server's on-demand)."""
        for sid in scenario_ids:
            if sid not in self.tracker.scenarios:
                await self._adopt(await self.client.scenario(sid))
                team = self._team_of.get(sid)
                if (
                    self._org_id is None
                    and team is not None
                    and not any(t == team for s, t in self._team_of.items() if s != sid)
                ):
                    self.schedule.sweep_groups(self._sweep_groups(), self.clock.now())
        self._kick()

    async def _adopt(self, scenario: Scenario) -> None:
        """Take a scenario into the watch, at the position the options ask for."""
        opts = self.options
        sid = scenario.id
        now = self.clock.now()
        since = opts.since_ms
        if since is None and not opts.follow and opts.resume is None:
            since = int(self._started_at * 1000) - 3600_000  # --no-follow alone: the last hour
        known = opts.resume is not None and sid in opts.resume.positions
        state = self.tracker.add_scenario(sid, floor_ms=since if since is not None else 0)
        # A team's listing that could not read a scenario's teamId still says its team.
        team = scenario.team_id if scenario.team_id is not None else opts.team_id
        state.name, state.team_id = scenario.name, team
        self._team_of[sid] = team
        self.emit(self.tracker.scenario_seen(scenario))
        # With --since the runs it replays teach the durations; the store's would count twice.
        seeded = opts.since_ms is None and seed(state.history, opts.alerts, opts.history, sid)
        if opts.run or opts.execution_id:
            # The target run may predate the watch; one page of logs gives its expected length.
            state.position.floor_ms = 0
            if seeded:
                return
            page = await self.client.logs(sid, limit=LOG_PAGE, priority=Priority.NORMAL)
            self._learn(sid, page.items)
            return
        # Without a position, the first scan tells history from news (see `_first_scan`), so
        # that adopting a thousand scenarios costs no request up front.
        self.schedule.adopt(sid, now, fresh=not known and since is None,
                            hooked=scenario.hook_id is not None and opts.follow)
        self._plan_schedule(scenario, now)

    async def _read_organization(self) -> None:
        """Learn the organization's request limit and web host; needs `organizations:read`."""
        opts = self.options
        if opts.api_limit is not None:
            self.client.budget.set_limit(opts.api_limit)
        try:
            orgs = await self.client.organizations(priority=Priority.NORMAL)
        except AuthError as exc:
            if exc.status == 401:
                raise
            orgs = []  # no organizations:read scope: keep --api-limit
        org = orgs[0] if len(orgs) == 1 else None
        self._org_id = org.id if org is not None else None
        if org is not None and org.api_limit is None and opts.api_limit is None:
            # make-api.md documents license.apiLimit on the single organization; the list may
            # leave it out.
            org = await self.client.organization(org.id, priority=Priority.NORMAL)
        if org is not None and opts.api_limit is None and org.api_limit:
            self.client.budget.set_limit(org.api_limit)
        if org is not None and (ledger := self.client.budget.ledger) is not None:
            # Other tokens of the same organization draw on the same limit: share with them.
            await ledger.adopt_account(
                f"organization {org.id}", self.client.budget.clock.monotonic()
            )
        host = org.zone if org is not None and org.zone else urlsplit(self.client.base_url).netloc
        self.tracker.ui_base = f"https://{host}"

    async def _resolve_targets(self) -> list[Scenario]:
        opts = self.options
        found: list[Scenario] = []
        if opts.team_id is not None:
            try:
                team = await self.client.scenarios(team_id=opts.team_id)
            except (AuthError, NotFoundError) as exc:
                if exc.status == 401:
                    raise
                # Make answers 403 both for a team that does not exist and for one the token
                # may not see; only the user can tell which.
                raise type(exc)(
                    f"team {opts.team_id}: Make refused to list its scenarios ({exc.status}): "
                    "the team may not exist, or the token cannot see it or lacks the "
                    "scenarios:read scope",
                    status=exc.status, code=exc.code,
                ) from None
            for scenario in team:
                # Names are matched as people read them: "route*" matches "Route emails".
                name = scenario.name.casefold()
                if opts.include and not any(
                    fnmatch.fnmatchcase(name, p.casefold()) for p in opts.include
                ):
                    continue
                if any(fnmatch.fnmatchcase(name, p.casefold()) for p in opts.exclude):
                    continue
                found.append(scenario)
            if not found and not opts.scenario_ids:
                raise UsageError(f"no scenario of team {opts.team_id} matches the filters")
        wanted = [sid for sid in opts.scenario_ids
                  if sid not in self.known_scenarios and not any(s.id == sid for s in found)]
        found.extend(await self._list_named(wanted))
        for sid in opts.scenario_ids:
            if any(s.id == sid for s in found):
                continue
            try:
                found.append(self.known_scenarios.get(sid) or await self.client.scenario(sid))
            except NotFoundError:
                raise NotFoundError(
                    f"scenario {sid} not found (or not visible to this token)", status=404
                ) from None
        if not found:
            raise UsageError("nothing to watch: name a scenario id or give --team")
        if (opts.run or opts.execution_id) and len(found) != 1:
            raise UsageError("--run and --execution take exactly one scenario")
        return found

    async def _list_named(self, wanted: list[int]) -> list[Scenario]:
        """Named scenarios in as few requests as Make allows: one listing page per hundred.

        With the organization known, it is listed filtered by id. Without it, the first
        scenario's own answer names its team, and that team is listed filtered by the other
        ids; scenarios of other teams are fetched one by one afterwards (by the caller).
        """
        if not wanted:
            return []
        if self._org_id is not None:
            if len(wanted) == 1:
                return []  # one GET /scenarios/{id} costs the same as a listing
            listed = await self._listing(wanted, organization_id=self._org_id)
            return [s for s in listed if s.id in set(wanted)]
        try:
            first = await self.client.scenario(wanted[0])
        except NotFoundError:
            raise NotFoundError(
                f"scenario {wanted[0]} not found (or not visible to this token)", status=404
            ) from None
        rest = wanted[1:]
        if not rest or first.team_id is None:
            return [first]
        try:
            listed = await self._listing(rest, team_id=int(first.team_id))
        except (AuthError, NotFoundError) as exc:
            if exc.status == 401:
                raise
            return [first]  # the team cannot be listed: one by one, then
        return [first, *(s for s in listed if s.id in set(rest))]

    async def _read_organization_later(self) -> None:
        """The organization, read after the first detections (see `_setup`): its web host for
        links, and its id, so that one listing covers every team."""
        try:
            orgs = await self.client.organizations(priority=Priority.HIGH)
        except MakestreamError as exc:
            if exc.transient or getattr(exc, "status", None) == 401:
                raise  # retried, or fatal as any 401
            return  # no organizations:read scope (or a CDN's refusal): links keep the API host
        if len(orgs) != 1:
            return
        org = orgs[0]
        self._org_id = org.id
        if org.zone:
            self.tracker.ui_base = f"https://{org.zone}"
        if self.options.follow and not (self.options.run or self.options.execution_id):
            self.schedule.sweep_groups(self._sweep_groups(), self.clock.now())

    async def _start_target(self, scenario: Scenario) -> None:
        opts = self.options
        now = self.clock.now()
        sid = scenario.id
        if opts.run:
            try:
                result = await self.client.run(sid, data=opts.run_data)
            except ApiError as exc:
                if exc.status != 400:
                    raise
                # Make refused the inputs or the scenario's state: the user's to fix.
                raise UsageError(f"--run: {exc.message}") from None
            eid, source = result.execution_id, "run"
            started: float | None = now
            detail = None
        else:
            assert opts.execution_id is not None
            eid, source, started = opts.execution_id, "existing", None
            # Ask Make about the run before saying anything of it: a mistyped id must not
            # produce `execution.started` and progress for a run that does not exist.
            try:
                detail = await self.client.execution(sid, eid, priority=Priority.HIGH)
            except NotFoundError:
                raise NotFoundError(
                    f"execution {eid} of scenario {sid} not found", status=404
                ) from None
        self._targets.add(eid)
        self.emit(self.tracker.started(sid, eid, now=now, source=source, started_at=started))
        self.schedule.scanning = False
        self.schedule.poll_share = 0.8  # nothing else competes for the budget
        if detail is not None and detail.status.terminal:
            # It has already ended: its log is all that is left to read.
            self.tracker.ended(sid, eid)
            self._pending += 1
            self.schedule.follow_up(
                Action("log", sid, eid, detail=detail, priority=Priority.URGENT)
            )
        else:
            self.schedule.watch_execution(
                sid, eid, now=now, history=self.tracker.scenarios[sid].history, started=started
            )
        self._kick()

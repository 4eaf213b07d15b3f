"""An SNMP client for one switch: GET and multi-column GETBULK table walks, v2c and v3.

Requests go through a shared :class:`UdpTransport`. Each attempt runs under its own timeout;
a walk's max-repetitions halves on tooBig or a timeout and recovers by one step after a few
good replies, because many school switches choke on large requests or answer slowly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from edumon.config import SnmpCredentials, Switch
from edumon.domain.models import NoValue, SnmpValue
from edumon.domain.oids import format_oid, table_name
from edumon.errors import SnmpError, SnmpProtocolError, SnmpTimeout
from edumon.sources.snmp import ber
from edumon.sources.snmp.transport import Address, UdpTransport
from edumon.sources.snmp.usm import KeyCache, ReportAction, UsmSession, report_reason

logger = logging.getLogger(__name__)

Oid = tuple[int, ...]
Index = tuple[int, ...]
WalkResult = dict[Oid, dict[Index, SnmpValue]]

# After this many good GETBULK replies in a row at reduced max-repetitions, try one more.
_RECOVER_AFTER = 3
# A size that failed (tooBig, timeout) is not tried again for this many good replies: a
# switch that never takes more than 4 would otherwise cost a failure every few requests.
_CEILING_KEPT_FOR = 1000
# Caps on one walk, so that an agent returning endless OIDs costs a bounded number of requests
# (see config.DEFAULT_MAX_WALK_ROWS and DEFAULT_MAX_WALK_REQUESTS for the reasoning).
DEFAULT_MAX_ROWS = 4096
DEFAULT_MAX_REQUESTS = 512


class WalkLimitExceeded(SnmpProtocolError):
    """A table walk went on past its row or request cap: a looping or broken agent.

    Attributes:
        limit: the cap that was hit.
        what: ``"rows"`` or ``"requests"``.
        table: the MIB table being walked (``ifTable``, ``ifXTable``, or an OID).
    """

    def __init__(self, message: str, *, limit: int, what: str, table: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.what = what
        self.table = table


@dataclass(slots=True)
class _WalkBudget:
    """Requests left to one walk, shared by its concurrent request streams."""

    requests: int = 0


@dataclass(slots=True)
class ClientStats:
    """Counters for one switch, readable by an exporter."""

    requests: int = 0
    """Datagrams sent (every attempt, discovery included)."""
    retries: int = 0
    """Attempts after the first for the same request."""
    timeouts: int = 0
    """Attempts that got no reply in time."""
    failures: int = 0
    """Requests given up after all retries."""
    too_big: int = 0
    varbinds: int = 0
    """Varbinds received in replies (including a walk's overshoot past its columns)."""
    max_repetitions: int = 0
    """The max-repetitions the next GETBULK will use."""
    walks_aborted: int = 0
    """Walks given up at their row or request cap (a looping or broken agent)."""


class SnmpClient:
    """SNMP v2c/v3 access to one switch.

    Args:
        host: switch address or name.
        port: UDP port.
        credentials: v2c community or v3 USM user.
        transport: the shared socket; a private one is created (and closed by :meth:`aclose`)
            when omitted.
        timeout: seconds to wait for each attempt.
        retries: attempts after the first.
        max_repetitions: GETBULK max-repetitions to start at (and never exceed).
        max_in_flight: requests in flight to this switch at once.
        key_cache: shared SNMPv3 key cache (one per poller saves the password hashing).
        clock: monotonic clock that advances our estimate of the SNMPv3 engine time.
        max_walk_rows: rows of one column a walk accepts before giving up on the agent.
        max_walk_requests: GETBULK requests one walk may send before giving up on the agent.
    """

    def __init__(
        self,
        host: str,
        port: int,
        credentials: SnmpCredentials,
        *,
        transport: UdpTransport | None = None,
        timeout: float = 2.0,
        retries: int = 2,
        max_repetitions: int = 10,
        max_in_flight: int = 1,
        key_cache: KeyCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_walk_rows: int = DEFAULT_MAX_ROWS,
        max_walk_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> None:
        if timeout <= 0 or retries < 0 or max_repetitions < 1 or max_in_flight < 1:
            raise ValueError("timeout > 0, retries >= 0, max_repetitions >= 1, max_in_flight >= 1")
        if max_walk_rows < 1 or max_walk_requests < 1:
            raise ValueError("max_walk_rows and max_walk_requests must be >= 1")
        self.max_walk_rows = max_walk_rows
        self.max_walk_requests = max_walk_requests
        self.host = host
        self.port = port
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = timeout
        self.retries = retries
        self.max_in_flight = max_in_flight
        self._credentials = credentials
        self._own_transport = transport is None
        self._transport = transport if transport is not None else UdpTransport()
        self._max_reps = max_repetitions
        self._reps = max_repetitions
        self._ceiling = max_repetitions
        self._good_since_ceiling = 0
        self._good_in_row = 0
        self._max_columns = 64
        self._slots = asyncio.Semaphore(max_in_flight)
        self._discover_lock = asyncio.Lock()
        self._address: tuple[Address, int] | None = None
        self._community = b""
        self._usm: UsmSession | None = None
        if credentials.version == "2c":
            assert credentials.community is not None
            self._community = credentials.community.get_secret_value().encode()
        else:
            self._usm = UsmSession(
                credentials,
                key_cache if key_cache is not None else KeyCache(),
                target=self.target,
                clock=clock,
            )
        self.stats = ClientStats(max_repetitions=max_repetitions)
        self.last_walk_varbinds = 0
        """Varbinds inside the walked columns in the last :meth:`walk`."""
        self.reply_arrived: float | None = None
        """``time.monotonic()`` when the latest reply arrived (the kernel's timestamp)."""

    @classmethod
    def for_switch(
        cls,
        switch: Switch,
        *,
        transport: UdpTransport | None = None,
        key_cache: KeyCache | None = None,
    ) -> SnmpClient:
        """A client with the switch's address, credentials and limits."""
        return cls(
            switch.host,
            switch.port,
            switch.snmp,
            transport=transport,
            timeout=switch.timeout_seconds,
            retries=switch.retries,
            max_repetitions=switch.max_repetitions,
            max_in_flight=switch.max_in_flight,
            key_cache=key_cache,
            max_walk_rows=switch.max_walk_rows,
            max_walk_requests=switch.max_walk_requests,
        )

    def __repr__(self) -> str:
        return f"SnmpClient({self.target}, v{self._credentials.version})"

    def engine_clock(self) -> tuple[int, int] | None:
        """SNMPv3: the agent's (snmpEngineBoots, snmpEngineTime) as last learned; else None."""
        if self._usm is None or not self._usm.discovered:
            return None
        return self._usm.engine_clock()

    @property
    def engine_boots(self) -> int | None:
        """The switch's snmpEngineBoots from its last authenticated SNMPv3 message.

        None for v2c, a noAuthNoPriv user, or before an authenticated reply arrived.
        """
        return self._usm.engine_boots if self._usm is not None else None

    @property
    def engine_time(self) -> int | None:
        """The switch's snmpEngineTime (seconds since engine_boots changed) from its newest
        authenticated SNMPv3 message; None as for :attr:`engine_boots`."""
        return self._usm.engine_time if self._usm is not None else None

    @property
    def max_repetitions(self) -> int:
        """The max-repetitions the next GETBULK will use (after any back-off)."""
        return self._reps

    # ------------------------------------------------------------------------------ public

    async def get(self, oids: Iterable[Oid]) -> dict[Oid, SnmpValue]:
        """GET the given OIDs; missing objects come back as NoValue.

        Raises:
            SnmpTimeout: no reply after all retries.
            SnmpAuthError: SNMPv3 authentication failed.
            SnmpProtocolError: the switch answered with an error or nonsense.
        """
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return {}
        reply = await self._exchange(lambda rid: ber.get_request(rid, wanted), bulk=False)
        if reply.error_status == ber.ErrorStatus.TOO_BIG and len(wanted) > 1:
            self.stats.too_big += 1
            half = len(wanted) // 2
            first = await self.get(wanted[:half])
            first.update(await self.get(wanted[half:]))
            return first
        if reply.error_status:
            raise self._pdu_error("GET", reply, wanted)
        got = _decoded(reply)
        self.stats.varbinds += len(got)
        if len(got) != len(wanted) or any(o != w for (o, _), w in zip(got, wanted, strict=True)):
            raise SnmpProtocolError(f"{self.target}: GET reply does not match the request")
        return dict(got)

    async def walk(
        self,
        columns: Iterable[Oid],
        *,
        max_rows: int | None = None,
        max_requests: int | None = None,
    ) -> WalkResult:
        """Walk table columns together with GETBULK (a table walk, several columns a request).

        Each column continues from its last OID until it leaves its subtree or the agent says
        endOfMibView. With ``max_in_flight`` > 1 the columns are split between that many
        concurrent request streams. A walk that goes past ``max_rows`` rows in a column or
        ``max_requests`` GETBULK requests is given up: an agent that returns endlessly
        increasing OIDs would otherwise cost thousands of requests every poll.

        Args:
            columns: the column OIDs to walk.
            max_rows: rows of one column accepted (default: the client's ``max_walk_rows``).
            max_requests: GETBULK requests accepted (default: ``max_walk_requests``).

        Returns:
            ``{column: {index: value}}`` where index is the OID suffix after the column.

        Raises:
            SnmpTimeout: no reply after all retries.
            SnmpAuthError: SNMPv3 authentication failed.
            WalkLimitExceeded: a column had more than ``max_rows`` rows or the walk took more
                than ``max_requests`` requests.
            SnmpProtocolError: the switch answered with an error or nonsense.
        """
        cols = list(dict.fromkeys(columns))
        result: WalkResult = {c: {} for c in cols}
        limits = (
            max_rows if max_rows is not None else self.max_walk_rows,
            max_requests if max_requests is not None else self.max_walk_requests,
        )
        budget = _WalkBudget()
        groups = [cols[i :: self.max_in_flight] for i in range(min(self.max_in_flight, len(cols)))]
        try:
            if len(groups) <= 1:
                rows = await self._walk_group(cols, result, limits, budget)
            else:
                try:
                    async with asyncio.TaskGroup() as tg:
                        tasks = [
                            tg.create_task(
                                self._walk_group(g, result, limits, budget),
                                name=f"snmp-walk:{self.target}:{i}",
                            )
                            for i, g in enumerate(groups)
                        ]
                except BaseExceptionGroup as group:
                    # Callers expect the SnmpError itself; anything else is a bug and stays
                    # grouped.
                    snmp_errors, rest = group.split(SnmpError)
                    if rest is None and snmp_errors is not None:
                        raise _first_leaf(snmp_errors) from None
                    raise
                rows = sum(t.result() for t in tasks)
        except WalkLimitExceeded:
            self.stats.walks_aborted += 1
            raise
        self.last_walk_varbinds = rows
        return result

    async def aclose(self) -> None:
        """Close the transport if this client created it."""
        if self._own_transport:
            await self._transport.aclose()

    # ------------------------------------------------------------------------------ walking

    def _limit_error(self, what: str, limit: int, column: Oid) -> WalkLimitExceeded:
        table = table_name(column)
        if what == "rows":
            text = (
                f"交换机的 {table} 超过 {limit} 行，SNMP 代理可能有故障 "
                f"(agent returned more than {limit} rows for {table}; possibly a broken agent; "
                "max_walk_rows raises the limit)"
            )
        else:
            text = (
                f"遍历 {table} 超过 {limit} 个请求仍未结束，SNMP 代理可能有故障 "
                f"(walking {table} took more than {limit} requests; possibly a broken agent; "
                "max_walk_requests raises the limit)"
            )
        return WalkLimitExceeded(f"{self.target}: {text}", limit=limit, what=what, table=table)

    async def _walk_group(
        self,
        group: Sequence[Oid],
        result: WalkResult,
        limits: tuple[int, int],
        budget: _WalkBudget,
    ) -> int:
        max_rows, max_requests = limits
        cursor = {c: c for c in group}
        active = list(group)
        rows = 0
        while active:
            batch = active[: self._max_columns]
            start = [cursor[c] for c in batch]
            if budget.requests >= max_requests:
                raise self._limit_error("requests", max_requests, batch[0])
            budget.requests += 1

            def bulk(rid: int, start: list[Oid] = start) -> ber.Pdu:
                # Reads max-repetitions per attempt: a timeout may have lowered it.
                return ber.get_bulk_request(rid, start, max_repetitions=self._reps)

            reply = await self._exchange(bulk, bulk=True)
            if reply.error_status == ber.ErrorStatus.TOO_BIG:
                self.stats.too_big += 1
                self._shrink(len(batch))
                continue
            if reply.error_status:
                raise self._pdu_error("GETBULK", reply, start)
            varbinds = _decoded(reply)
            self.stats.varbinds += len(varbinds)
            self._grow()
            width = len(batch)
            finished: set[Oid] = set()
            progressed = False
            for j, col in enumerate(batch):
                table = result[col]
                plen = len(col)
                last = cursor[col]
                for k in range(j, len(varbinds), width):
                    oid, value = varbinds[k]
                    if len(oid) <= plen or oid[:plen] != col or isinstance(value, NoValue):
                        finished.add(col)
                        break
                    if oid <= last:
                        # An agent bug (a loop); what came before is still good.
                        logger.warning(
                            "%s: OID not increasing in %s; stopping that column",
                            self.target,
                            format_oid(col),
                        )
                        finished.add(col)
                        break
                    table[oid[plen:]] = value
                    last = oid
                    rows += 1
                    progressed = True
                cursor[col] = last
            if not varbinds:
                # An empty reply to a non-empty GETBULK: nothing more to be had.
                finished.update(batch)
            elif not progressed and not finished:
                raise SnmpProtocolError(f"{self.target}: GETBULK reply made no progress")
            for col in batch:
                if len(result[col]) > max_rows:
                    raise self._limit_error("rows", max_rows, col)
            active = [c for c in active if c not in finished]
        return rows

    def _remember_failure(self) -> None:
        self._ceiling = min(self._ceiling, self._reps - 1) if self._reps > 1 else 1
        self._good_since_ceiling = 0

    def _shrink(self, width: int) -> None:
        """React to tooBig: fewer repetitions, then fewer columns per request."""
        self._good_in_row = 0
        self._remember_failure()
        if self._reps > 1:
            self._reps = max(1, self._reps // 2)
        elif width > 1:
            self._max_columns = max(1, width // 2)
        else:
            raise SnmpProtocolError(
                f"{self.target}: the switch answers tooBig even for a single value"
            )
        self.stats.max_repetitions = self._reps
        logger.info(
            "%s: reply too big; max-repetitions now %d, columns per request %d",
            self.target,
            self._reps,
            min(self._max_columns, width),
        )

    def _back_off(self) -> None:
        self._good_in_row = 0
        self._remember_failure()
        if self._reps > 1:
            self._reps = max(1, self._reps // 2)
            self.stats.max_repetitions = self._reps

    def _grow(self) -> None:
        if self._ceiling < self._max_reps:
            self._good_since_ceiling += 1
            if self._good_since_ceiling >= _CEILING_KEPT_FOR:
                self._ceiling = self._max_reps
        if self._reps >= min(self._max_reps, self._ceiling):
            return
        self._good_in_row += 1
        if self._good_in_row >= _RECOVER_AFTER:
            self._good_in_row = 0
            self._reps += 1
            self.stats.max_repetitions = self._reps

    # ------------------------------------------------------------------------------ exchange

    async def _resolve(self) -> tuple[Address, int]:
        if self._address is not None:
            return self._address
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            self._address = ((str(ip), self.port), family)
            return self._address
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(
                    self.host, self.port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
                )
        except (OSError, TimeoutError) as exc:
            raise SnmpError(f"{self.target}: cannot resolve the host name ({exc})") from exc
        family, _, _, _, sockaddr = infos[0]
        self._address = ((str(sockaddr[0]), int(sockaddr[1])), int(family))
        return self._address

    def _timeout_error(self, what: str) -> SnmpTimeout:
        attempts = self.retries + 1
        if self._usm is None:
            check = "the community"
        elif self._credentials.priv_protocol is not None:
            # A switch that cannot decrypt a request drops it silently, so this shows up here.
            check = "the SNMPv3 user, priv_protocol and priv_password"
        else:
            check = "the SNMPv3 user and security level"
        return SnmpTimeout(
            f"{self.target}: no reply to {what} after {attempts} attempt(s) of "
            f"{self.timeout:g} s: check the address, that SNMP is enabled on the switch, "
            f"{check}, and ACLs between here and the switch"
        )

    def _pdu_error(self, what: str, reply: ber.Pdu, oids: Sequence[Oid]) -> SnmpProtocolError:
        status = ber.error_status_name(reply.error_status)
        where = ""
        if 0 < reply.error_index <= len(oids):
            where = f" at {format_oid(oids[reply.error_index - 1])}"
        return SnmpProtocolError(f"{self.target}: {what} failed: {status}{where}")

    async def _send(self, address: tuple[Address, int], data: bytes, rid: int) -> ber.Message:
        self.stats.requests += 1
        reply = await self._transport.request(
            address[0], address[1], data, rid, deadline=self.timeout
        )
        self.reply_arrived = reply.arrived
        return reply.message

    async def _discover(self, address: tuple[Address, int]) -> None:
        usm = self._usm
        assert usm is not None
        async with self._discover_lock:
            if usm.discovered:
                return
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats.retries += 1
                rid = self._transport.next_id()
                try:
                    msg = await self._send(address, usm.discovery_message(rid), rid)
                except TimeoutError:
                    self.stats.timeouts += 1
                    continue
                if not isinstance(msg, ber.V3Message):
                    raise SnmpProtocolError(f"{self.target}: SNMPv3 discovery got a non-v3 reply")
                usm.learn(msg.security)
                logger.debug("%s: SNMPv3 engine discovered", self.target)
                return
            self.stats.failures += 1
            raise self._timeout_error("SNMPv3 engine discovery")

    def _open(self, msg: ber.Message) -> ber.Pdu:
        if self._usm is None:
            if not isinstance(msg, ber.CommunityMessage) or msg.version != ber.VERSION_2C:
                raise SnmpProtocolError(f"{self.target}: reply is not SNMPv2c")
            if msg.community != self._community:
                raise SnmpProtocolError(f"{self.target}: reply carries a different community")
            return msg.pdu
        if not isinstance(msg, ber.V3Message):
            raise SnmpProtocolError(f"{self.target}: reply is not SNMPv3")
        return self._usm.open_reply(msg)

    async def _exchange(self, make_pdu: Callable[[int], ber.Pdu], *, bulk: bool) -> ber.Pdu:
        """Send a request (built afresh each attempt) and return the authenticated reply PDU."""
        async with self._slots:
            address = await self._resolve()
            usm = self._usm
            resynced = False
            attempt = 0
            while True:
                if usm is not None and not usm.discovered:
                    await self._discover(address)
                rid = self._transport.next_id()
                pdu = make_pdu(rid)
                if usm is None:
                    data = ber.encode_community_message(self._community, pdu)
                else:
                    data = usm.encode(pdu, rid)
                try:
                    msg = await self._send(address, data, rid)
                except TimeoutError:
                    self.stats.timeouts += 1
                    attempt += 1
                    if attempt > self.retries:
                        self.stats.failures += 1
                        raise self._timeout_error(_describe(pdu)) from None
                    self.stats.retries += 1
                    if bulk:
                        self._back_off()
                    continue
                reply = self._open(msg)
                if reply.type == ber.PduType.RESPONSE:
                    return reply
                if reply.type != ber.PduType.REPORT or usm is None:
                    raise SnmpProtocolError(
                        f"{self.target}: unexpected {reply.type.name} PDU in reply"
                    )
                assert isinstance(msg, ber.V3Message)
                reason = report_reason(reply)
                action = usm.handle_report(msg, reason)
                if action is ReportAction.RETRY and not resynced:
                    resynced = True
                    continue
                if action is ReportAction.IGNORE:
                    # Unauthenticated, maybe forged: it changed nothing; the attempt is lost.
                    attempt += 1
                    if attempt <= self.retries:
                        self.stats.retries += 1
                        continue
                    # Refused on every attempt (e.g. a replaced switch with a new engine ID):
                    # a real failure, so the next request starts with discovery.
                    usm.reset()
                raise usm.report_error(reason)


def _first_leaf(group: BaseExceptionGroup[SnmpError]) -> SnmpError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _decoded(pdu: ber.Pdu) -> list[ber.VarBind]:
    # A decoded PDU's varbinds are plain (OID, SnmpValue) pairs, never Typed.
    return cast(list[ber.VarBind], pdu.varbinds)


def _describe(pdu: ber.Pdu) -> str:
    names = {
        ber.PduType.GET: "GET",
        ber.PduType.GET_NEXT: "GETNEXT",
        ber.PduType.GET_BULK: "GETBULK",
    }
    first = format_oid(pdu.varbinds[0][0]) if pdu.varbinds else ""
    return f"{names.get(pdu.type, pdu.type.name)} {first}".strip()

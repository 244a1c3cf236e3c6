"""A minimal HTTP/1.1 keep-alive client and the load shapes of the benchmarks.

Raw asyncio streams rather than httpx: on a 2-core machine the client shares
the CPU with the server and PostgreSQL, and httpx spends several times more
CPU per request than this (bench/ingest.py measures both ceilings against a
trivial ASGI app and prints them). Loopback only, one request in flight per
connection, no pipelining.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
CONNECT_GAP_S = 0.005
RAMP_GAP_S = 0.02


class HttpError(Exception):
    """The server answered something this client cannot read, or closed the connection."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    events: int = 1  # events carried, counted as done when the answer is 2xx
    ids: tuple[str, ...] = ()  # event ids to note the answer time of (Tally.answered_at)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def send(self, request: Request) -> Response:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = [
            f"{request.method} {request.path} HTTP/1.1",
            f"Host: {HOST}:{self.port}",
            f"Content-Length: {len(request.body)}",
            *(f"{name}: {value}" for name, value in request.headers),
        ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        try:
            return await self._read_response(self.reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"connection lost: {exc!r}") from exc

    async def _read_response(self, reader: asyncio.StreamReader) -> Response:
        raw_head = await reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length, chunked, closing = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                closing = True
        if chunked:
            body = await self._read_chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            closing = True
        if closing:
            await self.close()
        return Response(status, body)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)


@dataclass
class Tally:
    """What one load run did: counts by status, events done, latencies (s)."""

    started: float = 0.0
    finished: float = 0.0
    requests: int = 0
    events: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    acked: int = 0  # events answered 2xx, counted or not (warm-up, after the deadline): what the database must hold
    duplicates: int = 0  # events the server said it already had (a bench bug if ever > 0)
    answered_at: dict[str, float] = field(default_factory=dict)  # event id -> wall clock of its 2xx
    latencies: list[float] = field(default_factory=list)
    first_problem: str | None = None

    @property
    def elapsed(self) -> float:
        return max(1e-9, self.finished - self.started)

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed

    def record(self, request: Request, response: Response | None, latency: float, problem: str | None) -> None:
        self.requests += 1
        self.latencies.append(latency)
        if response is None:
            self.errors += 1
            self.first_problem = self.first_problem or problem
            return
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        if 200 <= response.status < 300:
            self.events += request.events
        elif self.first_problem is None:
            self.first_problem = f"{response.status}: {response.body[:300].decode('utf-8', 'replace')}"

    def ack(self, request: Request, response: Response | None) -> None:
        if response is None or not 200 <= response.status < 300:
            return
        self.acked += request.events
        if request.ids:
            now = time.time()
            for event_id in request.ids:
                self.answered_at[event_id] = now
        if response.body.startswith(b'{"accepted"'):
            self.duplicates += int(json.loads(response.body).get("duplicates", 0))

    def percentile_ms(self, q: float) -> float | None:
        return percentile(self.latencies, q) * 1000 if self.latencies else None

    def ok(self) -> bool:
        return self.errors == 0 and all(200 <= status < 300 for status in self.statuses)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


async def _exchange(connection: Connection, request: Request) -> tuple[Response | None, str | None]:
    try:
        return await connection.send(request), None
    except (HttpError, OSError) as exc:
        return None, repr(exc)


async def closed_loop(
    port: int, make: Callable[[], Request], *, concurrency: int, duration_s: float, warmup_s: float = 0.0
) -> Tally:
    """`concurrency` connections, each sending its next request when the last one is answered.

    Counted: the answers that arrive between the end of the warm-up and the
    deadline (by completion time, unbiased in steady state); what is still in
    flight at the deadline is awaited but not counted.
    """
    tally = Tally()
    connections = [Connection(port) for _ in range(concurrency)]
    begin = time.perf_counter()
    tally.started = begin + warmup_s
    deadline = tally.started + duration_s
    # Connections join one by one, each starting to send at once: with
    # `--workers 2`, connects that arrive while both workers are idle tend
    # to all be accepted by the same one, leaving the other without work.
    ramp_gap_s = min(RAMP_GAP_S, warmup_s / (2 * concurrency))

    async def worker(index: int, connection: Connection) -> None:
        await asyncio.sleep(index * ramp_gap_s)
        await connection.open()
        while time.perf_counter() < deadline:
            request = make()
            sent = time.perf_counter()
            response, problem = await _exchange(connection, request)
            done = time.perf_counter()
            tally.ack(request, response)
            if tally.started <= done <= deadline:
                tally.record(request, response, done - sent, problem)

    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(connections)))
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    tally.finished = deadline
    return tally


async def paced(
    port: int,
    make: Callable[[], Request],
    *,
    rate_per_s: float,
    duration_s: float,
    pool: int = 32,
) -> Tally:
    """Open loop: a request every 1/rate s, whatever the answers do.

    Latency counts from the scheduled send time, so a stall shows up in the
    percentiles instead of silently lowering the rate (no coordinated
    omission). Up to `pool` requests are in flight; more wait for a connection.
    """
    tally = Tally()
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        connection = Connection(port)
        await connection.open()
        await asyncio.sleep(CONNECT_GAP_S)
        free.put_nowait(connection)
    total = int(rate_per_s * duration_s)
    tasks = []

    async def one(request: Request, scheduled: float) -> None:
        connection = await free.get()
        try:
            response, problem = await _exchange(connection, request)
        finally:
            free.put_nowait(connection)
        tally.record(request, response, time.perf_counter() - scheduled, problem)
        tally.ack(request, response)

    tally.started = time.perf_counter()
    for n in range(total):
        scheduled = tally.started + n / rate_per_s
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(make(), scheduled)))
    await asyncio.gather(*tasks)
    tally.finished = time.perf_counter()
    while not free.empty():
        await free.get_nowait().close()
    return tally


async def httpx_closed_loop(port: int, make: Callable[[], Request], *, concurrency: int, duration_s: float) -> Tally:
    """The same closed loop through httpx, to show what the client library costs."""
    import httpx

    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits) as client:
        tally.started = time.perf_counter()
        deadline = tally.started + duration_s

        async def worker() -> None:
            while time.perf_counter() < deadline:
                request = make()
                sent = time.perf_counter()
                try:
                    answer = await client.request(
                        request.method, request.path, content=request.body, headers=dict(request.headers)
                    )
                    response: Response | None = Response(answer.status_code, answer.content)
                    problem = None
                except httpx.HTTPError as exc:
                    response, problem = None, repr(exc)
                tally.record(request, response, time.perf_counter() - sent, problem)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.finished = time.perf_counter()
    return tally


class LoopLag:
    """How late the load generator's own event loop runs, sampled every `every_s`.

    The paced shapes stamp latency from the scheduled send time and the
    websocket figure from the frame's arrival: both include whatever delay
    the client's own loop adds on a machine whose two cores it shares with
    the server and PostgreSQL. This measures that delay, to be read next to them.
    """

    def __init__(self, every_s: float = 0.001) -> None:
        self.every_s = every_s
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.every_s)
            self.lags.append(max(0.0, time.perf_counter() - before - self.every_s))

    def percentile_ms(self, q: float) -> float | None:
        return percentile(self.lags, q) * 1000 if self.lags else None

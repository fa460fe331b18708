"""Dashboard benchmarks: live-update latency and /api/status throughput over real HTTP.

Run::

    .venv/bin/python -m benchmarks.dashboard                  # both, prints a table
    .venv/bin/python -m benchmarks.dashboard --rounds 5 --seconds 5 --concurrency 32

The dashboard runs as ``robochem serve`` runs it: ``create_app`` + ``make_server`` (uvicorn,
access log on) in a subprocess, on an SQLite database with a few campaigns, an operator
with an API token (argon2id password, token stored as its sha256), and a lab whose
devices produce a reading every 0.25 s (4 Hz, random phase).

1. **Device reading to browser update.** Each reading carries the wall time
   (``time.time()``) at which it was produced; the server process publishes it on the
   event bus at that moment (``device.reading`` events) and exposes it in the device
   snapshots (``lab.devices()``). A client in this process holds one server-sent-event
   stream (``GET /api/events/stream?devices=true``, Bearer token, read with httpx) and
   records, for every reading, receive time minus produce time on two paths: the bus event
   (what campaign and step updates use) and the device snapshot (what the lab page draws,
   polled every ``device_poll_s`` = 0.1 s). Both processes share the machine clock.
2. **Status throughput.** Requests/s of ``GET /api/status`` with a Bearer token, and with
   a browser session cookie (logged in through the form), from this process over
   ``--concurrency`` keep-alive connections for ``--seconds``, best and median of
   ``--rounds``, with the server's CPU time per request (from /proc). The load generator
   is a minimal asyncio HTTP/1.1 client (as wrk or ab would be) so that on a 2-core
   machine the client does not eat the core the server needs; every response is checked
   (status 200, JSON body). One round with ``httpx.AsyncClient`` is printed for
   comparison: it costs ~3 ms of client CPU per request and saturates first.

``--profile FILE`` writes the server's cProfile (``python -m pstats FILE``).

Targets (issue 8): latency median <= 250 ms; >= 300 requests/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READING_PERIOD_S = 0.25
LATENCY_TARGET_MS = 250.0
THROUGHPUT_TARGET = 300.0
PASSWORD = "benchmark password"

# -- the server (subprocess) -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TickingLab:
    """A LabController whose devices produce a reading every ``period_s`` (random phase).

    Each reading is stamped with its wall time of production and published on the bus
    at once, as a device layer does."""

    platform = "benchmark"

    def __init__(self, bus: Any, period_s: float = READING_PERIOD_S) -> None:
        import datetime as dt

        from robochem.web.lab import DeviceState

        self.bus = bus
        self.period_s = period_s
        now = dt.datetime.now(dt.UTC)
        self.state = {
            "pump-a": DeviceState(
                "pump-a", "sim", "pump", True, {"flow_ml_min": 0.5, "pressure_bar": 1.1},
                [], ["flow"], updated_at=now,
            ),
            "reactor": DeviceState(
                "reactor", "sim", "photoreactor", True,
                {"light_percent": 50.0, "temperature_c": 25.0}, [], ["light", "temperature"],
                updated_at=now,
            ),
        }  # fmt: skip
        self._task: asyncio.Task[None] | None = None
        self.seq = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        import datetime as dt

        await asyncio.sleep(random.uniform(0, self.period_s))
        while True:
            self.seq += 1
            produced = time.time()
            device = self.state["reactor"]
            device.readings = {
                "light_percent": 50.0,
                "temperature_c": 25.0 + random.uniform(-0.2, 0.2),
                "seq": self.seq,
                "produced_unix": produced,
            }
            device.updated_at = dt.datetime.now(dt.UTC)
            await self.bus.publish(
                "reactor", "device.reading", {"seq": self.seq, "produced_unix": produced}
            )
            await asyncio.sleep(self.period_s * random.uniform(0.8, 1.2))

    def devices(self) -> list[Any]:
        from dataclasses import replace

        return [replace(d, readings=dict(d.readings)) for d in self.state.values()]

    async def set_flow(self, device: str, ml_min: float) -> None: ...
    async def set_light(self, device: str, percent: float) -> None: ...
    async def set_temperature(self, device: str, celsius: float) -> None: ...
    async def set_valve(self, device: str, position: str) -> None: ...
    async def emergency_stop(self) -> None: ...


def _seed(database: Any) -> str:
    """Campaigns for /api/status to count; an operator and their API token."""
    from robochem.storage.models import Campaign, CampaignStatus, Experiment
    from robochem.web.auth import create_user, new_api_token

    with database.session() as s:
        for i, status in enumerate(
            [CampaignStatus.RUNNING, CampaignStatus.PAUSED] + [CampaignStatus.COMPLETED] * 4
        ):
            campaign = Campaign(
                name=f"campaign {i}",
                protocol_text="name: x\n",
                protocol_sha256="0" * 64,
                status=status,
                summary={"planned_experiments": 20},
            )
            s.add(campaign)
            s.flush()
            for k in range(12):
                s.add(
                    Experiment(
                        campaign_id=campaign.id, index=k + 1, conditions={"t": k}, status="done"
                    )
                )
        user = create_user(s, "bench", "operator", PASSWORD)  # real argon2id parameters
        _, token = new_api_token(s, user, "benchmark")
    return token


async def _serve(folder: Path, port: int) -> None:
    import secrets

    from robochem.events import EventBus
    from robochem.storage.db import Database
    from robochem.web.app import create_app, make_server

    database = Database(f"sqlite:///{folder / 'bench.db'}")
    token = _seed(database)
    bus = EventBus(database)
    lab = TickingLab(bus)
    app = create_app(
        database, bus, lab=lab, platform="benchmark", secret_key=secrets.token_bytes(32)
    )
    server = make_server(app, host="127.0.0.1", port=port)
    lab.start()
    serving = asyncio.create_task(server.serve())
    for _ in range(3000):  # uvicorn sets `started` once the socket listens
        if server.started:
            break
        await asyncio.sleep(0.02)
    (folder / "server.json").write_text(json.dumps({"port": port, "token": token}))
    await serving


@contextlib.contextmanager
def dashboard_server(profile: Path | None = None) -> Iterator[tuple[str, str, int]]:
    """(base URL, operator token, server pid) of a dashboard in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="robochem-bench-") as tmp:
        folder = Path(tmp)
        port = _free_port()
        command = [sys.executable, "-m", "benchmarks.dashboard", "--serve", str(folder), str(port)]
        if profile is not None:
            command += ["--profile", str(profile)]
        env = {**os.environ, "ROBOCHEM_DATA_DIR": str(folder / "data")}
        log = (folder / "server.log").open("wb")
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (folder / "server.json").exists():
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {(folder / 'server.log').read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start in 60 s")
                time.sleep(0.05)
            info = json.loads((folder / "server.json").read_text())
            yield f"http://127.0.0.1:{info['port']}", info["token"], process.pid
        finally:
            process.terminate()  # uvicorn shuts down on SIGTERM
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


# -- latency -----------------------------------------------------------------------------


@dataclass
class Latencies:
    bus_ms: list[float] = field(default_factory=list)
    snapshot_ms: list[float] = field(default_factory=list)


async def measure_latency(base: str, token: str, seconds: float) -> Latencies:
    import httpx

    out = Latencies()
    seen: set[int] = set()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    url = f"{base}/api/events/stream?devices=true"
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        response.raise_for_status()
        end = time.monotonic() + seconds
        async for line in response.aiter_lines():
            received = time.time()
            if time.monotonic() > end:
                break
            if not line.startswith("data: "):
                continue
            message = json.loads(line[6:])
            if message["type"] == "event" and message["event"]["kind"] == "device.reading":
                payload = message["event"]["payload"]
                out.bus_ms.append((received - payload["produced_unix"]) * 1000)
            elif message["type"] == "devices":
                for device in message["devices"]:
                    readings = device["readings"]
                    seq = readings.get("seq")
                    if seq is not None and seq not in seen:  # first time this reading shows
                        seen.add(seq)
                        out.snapshot_ms.append((received - readings["produced_unix"]) * 1000)
    return out


# -- throughput --------------------------------------------------------------------------


async def _worker(host: str, port: int, request: bytes, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if status != b"200" or not body.startswith(b"{"):
                raise RuntimeError(f"bad response {head[:12]!r} {body[:200]!r}")
            counts[0] += 1
    finally:
        writer.close()


async def browser_session(base: str) -> str:
    """The ``Cookie`` header of a browser session: log in through the form (argon2id)."""
    import re

    import httpx

    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None, page.text
        form = {"name": "bench", "password": PASSWORD, "csrf_token": match.group(1)}
        response = await client.post("/login", data=form)
        assert response.status_code == 303, response.text
        return f"rc_session={client.cookies['rc_session']}"


async def measure_throughput(
    base: str, auth_header: str, seconds: float, concurrency: int
) -> float:
    """Requests/s of GET /api/status sent with ``auth_header`` (``Authorization: ...``
    or ``Cookie: ...``)."""
    host, port = base.removeprefix("http://").split(":")
    request = (
        f"GET /api/status HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"{auth_header}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    warm: list[int] = [0]
    await asyncio.gather(
        *(_worker(host, int(port), request, time.monotonic() + 0.5, warm) for _ in range(4))
    )
    counts = [0]
    start = time.monotonic()
    await asyncio.gather(
        *(_worker(host, int(port), request, start + seconds, counts) for _ in range(concurrency))
    )
    return counts[0] / (time.monotonic() - start)


async def measure_throughput_httpx(
    base: str, token: str, seconds: float, concurrency: int
) -> tuple[float, float]:
    """The same load from httpx.AsyncClient: (requests/s, client CPU ms per request)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    counts = [0]
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop_at:
                response = await client.get("/api/status")
                response.raise_for_status()
                counts[0] += 1

        cpu0, start = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu0
    return counts[0] / elapsed, cpu * 1000 / max(1, counts[0])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- report ------------------------------------------------------------------------------


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", nargs=2, metavar=("FOLDER", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help="cProfile the server into this file")
    args = parser.parse_args(argv)

    if args.serve:
        folder, port = Path(args.serve[0]), int(args.serve[1])
        if args.profile is None:
            asyncio.run(_serve(folder, port))
            return
        import cProfile
        import signal

        # uvicorn re-raises SIGTERM after its shutdown: exit through `finally` instead.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(_serve(folder, port))
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
        return

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average " + " ".join(f"{x:.2f}" for x in load))
    with dashboard_server(args.profile) as (base, token, pid):
        lat = asyncio.run(measure_latency(base, token, args.latency_seconds))
        cookie = asyncio.run(browser_session(base))
        rates, cpu_ms, session_rates = [], [], []
        for _ in range(args.rounds):
            cpu0 = _cpu_seconds(pid)
            rate = asyncio.run(
                measure_throughput(
                    base, f"Authorization: Bearer {token}", args.seconds, args.concurrency
                )
            )
            cpu = _cpu_seconds(pid) - cpu0
            rates.append(rate)
            cpu_ms.append(cpu * 1000 / max(1.0, rate * args.seconds))
            session_rates.append(
                asyncio.run(
                    measure_throughput(base, f"Cookie: {cookie}", args.seconds, args.concurrency)
                )
            )
        httpx_rate, httpx_cpu_ms = asyncio.run(
            measure_throughput_httpx(base, token, args.seconds, args.concurrency)
        )
    rows = [
        ("reading -> browser, bus event (ms)", lat.bus_ms),
        ("reading -> browser, device snapshot (ms)", lat.snapshot_ms),
    ]
    print(f"\n{'measure':<44}{'n':>6}{'median':>10}{'p95':>10}{'target':>12}")
    for name, values in rows:
        if not values:
            print(f"{name:<44}{0:>6}{'-':>10}{'-':>10}")
            continue
        print(
            f"{name:<44}{len(values):>6}{statistics.median(values):>10.1f}"
            f"{_p95(values):>10.1f}{'<= 250':>12}"
        )
    print(
        f"{'GET /api/status req/s, API token (best, med)':<44}{len(rates):>6}"
        f"{max(rates):>10.0f}{statistics.median(rates):>10.0f}{'>= 300':>12}"
    )
    print(
        f"{'  same with a browser session cookie':<44}{len(session_rates):>6}"
        f"{max(session_rates):>10.0f}{statistics.median(session_rates):>10.0f}{'':>12}"
    )
    print(
        f"{'  server CPU per request (ms, median)':<44}{len(cpu_ms):>6}"
        f"{statistics.median(cpu_ms):>10.2f}{'':>10}"
    )
    print(
        f"{'  same load from httpx.AsyncClient (req/s)':<44}{1:>6}{httpx_rate:>10.0f}"
        f"{'':>10}   client CPU {httpx_cpu_ms:.2f} ms/request"
    )
    print(f"  ({args.concurrency} keep-alive connections, {args.seconds:g} s per round)")
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()

"""The server-sent event stream, driven at the ASGI level (httpx's ASGITransport buffers
whole responses, and a stream never ends)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from dashboard_kit import World


class SseClient:
    """Calls the app with one GET and collects the body as it streams."""

    def __init__(
        self, world: World, path: str, query: str = "", headers: dict[str, str] | None = None
    ):
        self.text = ""
        self.status: int | None = None
        self._changed = asyncio.Event()
        raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver"), *raw],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        }
        self._task = asyncio.create_task(world.app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never hangs up by itself
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.text += message.get("body", b"").decode()
        self._changed.set()

    async def wait_for(self, predicate: Callable[[str], bool], seconds: float = 5.0) -> str:
        async def loop() -> str:
            while not predicate(self.text):
                self._changed.clear()
                await self._changed.wait()
            return self.text

        return await asyncio.wait_for(loop(), seconds)

    def messages(self) -> list[tuple[str | None, dict[str, Any]]]:
        out = []
        for block in self.text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "data" in fields:
                out.append((fields.get("id"), json.loads(fields["data"])))
        return out

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_stream_needs_a_login(world: World) -> None:
    sse = SseClient(world, "/api/events/stream")
    await sse.wait_for(lambda _: sse.status is not None)
    assert sse.status == 401
    await sse.close()


async def test_a_published_event_arrives_with_its_id(world: World) -> None:
    await world.bus.publish("engine", "before", {})  # history: not replayed without a cursor
    sse = SseClient(world, "/api/events/stream", headers=world.bearer("viewer"))
    try:
        await sse.wait_for(lambda t: "retry:" in t)
        assert sse.status == 200
        event = await world.bus.publish(
            "engine", "experiment.done", {"yield": 71.5}, campaign_id=None
        )
        await sse.wait_for(lambda t: "experiment.done" in t)
        ((event_id, data),) = sse.messages()
        assert event_id == str(event.id)
        assert data["type"] == "event" and data["event"]["payload"] == {"yield": 71.5}
    finally:
        await sse.close()


async def test_last_event_id_resumes_without_gap_or_repeat(world: World) -> None:
    first = await world.bus.publish("engine", "one", {})
    await world.bus.publish("engine", "two", {})
    await world.bus.publish("engine", "three", {})
    headers = {**world.bearer("viewer"), "Last-Event-ID": str(first.id)}
    sse = SseClient(world, "/api/events/stream", headers=headers)
    try:
        await sse.wait_for(lambda t: "three" in t)
        await world.bus.publish("engine", "four", {})
        await sse.wait_for(lambda t: "four" in t)
        kinds = [data["event"]["kind"] for _, data in sse.messages()]
        assert kinds == ["two", "three", "four"]
    finally:
        await sse.close()


async def test_campaign_filter(world: World) -> None:
    from robochem.storage.models import Campaign

    with world.database.session() as s:
        rows = [Campaign(name=n, protocol_text="x", protocol_sha256="0" * 64) for n in "ab"]
        s.add_all(rows)
    a, b = rows[0].id, rows[1].id
    sse = SseClient(world, "/api/events/stream", f"campaign_id={a}&after=0", world.bearer("viewer"))
    try:
        await world.bus.publish("engine", "for-b", {}, campaign_id=b)
        await world.bus.publish("engine", "for-a", {}, campaign_id=a)
        await sse.wait_for(lambda t: "for-a" in t)
        assert "for-b" not in sse.text
    finally:
        await sse.close()


async def test_device_snapshots_follow_changes_and_skip_unchanged_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every change reaches the stream; an unchanged lab sends nothing new. (How quickly is
    a figure of ``benchmarks/dashboard.py``, not of this test.)"""
    assert world.lab is not None
    polls = 0
    looked_again = asyncio.Event()
    read_devices = world.lab.devices

    def counted() -> Any:  # the lab's own snapshot, counted to see the stream's polls
        nonlocal polls
        polls += 1
        if polls >= 3:
            looked_again.set()
        return read_devices()

    monkeypatch.setattr(world.lab, "devices", counted)
    sse = SseClient(world, "/api/events/stream", "devices=true", world.bearer("viewer"))
    try:
        await sse.wait_for(lambda t: '"type":"devices"' in t)
        snapshot = [d for _, d in sse.messages() if d["type"] == "devices"][-1]["devices"]
        assert {d["name"] for d in snapshot} == {"pump-a", "reactor", "valve"}

        for rate in (1.0, 2.0, 3.0):
            await world.lab.set_flow("pump-a", rate)
            await sse.wait_for(lambda t, r=rate: f'"flow_ml_min":{r}' in t)
        count = sse.text.count('"type":"devices"')
        polls = 0
        looked_again.clear()
        await asyncio.wait_for(looked_again.wait(), 10)  # three more looks at an unchanged lab
        assert sse.text.count('"type":"devices"') == count
    finally:
        await sse.close()

"""`passage gate`: present credentials from the command line or stdin."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from config.settings import Settings
from edge_agent.agent import GateAgent, GateDecision, cache_path
from edge_agent.cache import GateCache
from edge_agent.db import open_gate_db
from edge_agent.offline_log import OfflineLog
from schemas.access import Credential


def describe(decision: GateDecision) -> str:
    verdict = "GRANTED" if decision.granted else f"DENIED {decision.reason}"
    who = f" {decision.subject_id}" if decision.subject_id else ""
    where = " OFFLINE" if decision.offline else ""
    return f"{verdict}{who}{where} ({decision.round_trip_ms:.1f} ms)"


def with_cache_path(settings: Settings, cache: Path | None) -> Settings:
    """Settings whose gate keeps its cache and offline queue at `cache` (when given)."""
    if cache is None:
        return settings
    return settings.model_copy(update={"gate": settings.gate.model_copy(update={"cache_path": cache})})


def show_cache(settings: Settings, gate_id: str | None) -> str:
    """The state of a gate's offline cache and queue, read from its file (no credential data)."""
    gid = gate_id or settings.gate.gate_id
    path = cache_path(settings, gid)
    if not path.is_file():
        return f"gate {gid}: no cache at {path} (never synced: offline, it admits nobody)"
    conn = open_gate_db(path)
    try:
        state = GateCache(conn, gid).state()
        queued = len(OfflineLog(conn))
    finally:
        conn.close()
    synced = f"v{state.version} (snapshot v{state.snapshot_version}, lineage {state.lineage}, at {state.synced_at})" \
        if state.version else "never synced"
    return (f"gate {gid}: cache {path}\n"
            f"  version   {synced}\n"
            f"  holds     {state.cards} cards, {state.pins} PINs, {state.groups} groups, {state.passes} passes\n"
            f"  key id    {state.key_id or '-'}; timezone {state.timezone or '-'}\n"
            f"  queued    {queued} offline decisions waiting for upload")


@contextlib.asynccontextmanager
async def running_gate(settings: Settings, gate_id: str | None):  # type: ignore[no-untyped-def]
    agent = GateAgent(settings, gate_id)
    task = asyncio.create_task(agent.run())
    try:
        try:
            await agent.mqtt.wait_connected(settings.gate.request_timeout_s * 2)
        except TimeoutError:
            click.echo(f"broker {settings.mqtt.host}:{settings.mqtt.port} unreachable; "
                       "the gate fails closed", err=True)
        yield agent
    finally:
        await agent.stop()
        await asyncio.wait_for(task, 10)


async def present_once(settings: Settings, gate_id: str | None, credential: Credential) -> int:
    async with running_gate(settings, gate_id) as agent:
        decision = await agent.present(credential)
        click.echo(describe(decision))
        return 0 if decision.granted else 1


async def read_cards_from_stdin(settings: Settings, gate_id: str | None) -> None:
    async with running_gate(settings, gate_id) as agent:
        click.echo(f"gate {agent.gate_id}: type a card id and Enter (Ctrl-D to quit)", err=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            card = line.strip()
            if card:
                click.echo(describe(await agent.present_card(card)))

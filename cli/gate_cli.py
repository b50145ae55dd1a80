"""`passage gate`: present credentials from the command line or stdin."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import click

from config.settings import Settings
from edge_agent.agent import GateAgent, GateDecision
from schemas.access import Credential


def describe(decision: GateDecision) -> str:
    verdict = "GRANTED" if decision.granted else f"DENIED {decision.reason}"
    who = f" {decision.subject_id}" if decision.subject_id else ""
    return f"{verdict}{who} ({decision.round_trip_ms:.1f} ms)"


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

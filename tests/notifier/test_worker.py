"""The notify worker over a real broker and store: visitor arrivals reach the resident, strangers
and device alerts reach the admins, each once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import NotifyRecipient, NotifySettings
from messaging import IncomingMessage, MqttClient
from notifier.service import NotifyWorker
from schemas import topics
from schemas.codes import CredentialType, EventCode, ReasonCode
from schemas.documents import Gate, User, UserKind
from schemas.events import AccessEvent, AlertEvent, NotificationEvent, VisitorEvent
from store.repository import Store
from tests.conftest import BrokerInfo, eventually, make_settings
from tests.notifier.standins import HttpStandIn, Reply


@dataclass
class Site:
    worker: NotifyWorker
    probe: MqttClient
    notes: list[NotificationEvent]
    sms: HttpStandIn

    def to(self, recipient: str) -> list[NotificationEvent]:
        return [n for n in self.notes if n.recipient_id == recipient]


@pytest.fixture
def sms() -> Iterator[HttpStandIn]:
    with HttpStandIn(lambda _req: Reply.of_json(200, {"status": "queued"})) as standin:
        yield standin


@pytest.fixture
async def site(tmp_path: Path, broker: BrokerInfo, embedded_store: Store, sms: HttpStandIn) -> AsyncIterator[Site]:
    async with _site(tmp_path, broker, embedded_store, sms) as s:
        yield s


@contextlib.asynccontextmanager
async def _site(tmp_path: Path, broker: BrokerInfo, embedded_store: Store, sms: HttpStandIn,
                **notify_options: object) -> AsyncIterator[Site]:
    await asyncio.to_thread(embedded_store.put_user, User(id="U1", name="Kim", building="A", unit="1203",
                                                          phone="+82 10 1234 5678"))
    await asyncio.to_thread(embedded_store.put_user, User(id="U9", name="Gone", active=False, phone="+821099990000"))
    base = make_settings(tmp_path, broker)
    notify = NotifySettings(channels=["local", "sms"], sms_webhook_url=sms.url + "/sms",
                            sms_token=SecretStr("gw-token"), retry_backoff_s=0.01, denial_alert_interval_s=60,
                            admins=[NotifyRecipient(id="admin-1"), NotifyRecipient(id="admin-2")],
                            **notify_options)  # type: ignore[arg-type]
    settings = base.model_copy(update={"notify": notify})
    worker = NotifyWorker(settings, embedded_store)
    probe = MqttClient(settings.mqtt, "notify-probe")
    notes: list[NotificationEvent] = []

    async def record(msg: IncomingMessage) -> None:
        if msg.topic.startswith("events/notify/"):
            notes.append(NotificationEvent.model_validate_json(msg.payload))

    probe.subscribe(topics.EVENTS_FILTER, record)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(probe.run())]
    try:
        await worker.mqtt.wait_connected(10)
        await probe.wait_connected(10)
        yield Site(worker, probe, notes, sms)
    finally:
        worker.stop()
        probe.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


def _entered(resident: str = "U1", code: EventCode = EventCode.VISITOR_ENTERED) -> VisitorEvent:
    return VisitorEvent(code=code, pass_id="P-42", resident_id=resident, visitor_name="Park Jisoo",
                        gate_id="lobby", uses=1, max_uses=2)


async def test_visitor_entering_notifies_the_resident_once(site: Site) -> None:
    event = _entered()
    await site.probe.publish(topics.visitor_event("P-42"), event)
    await site.probe.publish(topics.visitor_event("P-42"), event)  # a QoS 1 redelivery: same msg_id
    await eventually(lambda: site.to("U1"))
    await asyncio.sleep(0.3)
    [note] = site.to("U1")
    assert note.title == "Your visitor has arrived" and note.body == "Park Jisoo entered at lobby."
    assert note.data == {"event": "VISITOR_ENTERED", "pass_id": "P-42", "gate_id": "lobby"}
    # The resident's phone from the store got the text too, once.
    [sms] = site.sms.requests
    assert sms.json()["to"] == "+821012345678" and "Park Jisoo entered at lobby." in sms.json()["message"]
    assert site.to("admin-1") == []


async def test_other_visitor_events_and_unknown_residents_notify_no_one(site: Site) -> None:
    await site.probe.publish(topics.visitor_event("P-42"), _entered(code=EventCode.VISITOR_PASS_ISSUED))
    await site.probe.publish(topics.visitor_event("P-43"), _entered(resident="U404"))
    await site.probe.publish(topics.visitor_event("P-44"), _entered(resident="U9"))  # inactive
    await site.probe.publish(topics.visitor_event("P-45"), b'{"not": "a visitor event"}')
    await site.probe.publish(topics.visitor_event("P-46"), _entered())  # a marker that arrives last
    await eventually(lambda: site.to("U1"))
    await asyncio.sleep(0.3)
    assert [n.recipient_id for n in site.notes] == ["U1"] and len(site.sms.requests) == 1


async def test_unknown_credential_at_a_gate_tells_admins_rate_limited(site: Site) -> None:
    def denial(reason: ReasonCode, gate: str = "lobby") -> AccessEvent:
        return AccessEvent(code=EventCode.ACCESS_DENIED, request_id="r1", gate_id=gate,
                           credential_type=CredentialType.CARD, granted=False, reason=reason, latency_ms=1.0)

    await site.probe.publish(topics.access_event("lobby"), denial(ReasonCode.UNKNOWN_CREDENTIAL))
    await site.probe.publish(topics.access_event("lobby"), denial(ReasonCode.UNKNOWN_CREDENTIAL))  # flood
    await site.probe.publish(topics.access_event("lobby"), denial(ReasonCode.USER_INACTIVE))  # a known person
    await site.probe.publish(topics.access_event("garage"), denial(ReasonCode.UNKNOWN_CREDENTIAL, "garage"))
    await eventually(lambda: len(site.to("admin-2")) == 2)
    await asyncio.sleep(0.3)
    for admin in ("admin-1", "admin-2"):
        assert sorted(n.data["gate_id"] for n in site.to(admin)) == ["garage", "lobby"]
        assert all(n.data["reason"] == "UNKNOWN_CREDENTIAL" for n in site.to(admin))
    assert site.to("U1") == []  # residents are not told about strangers


async def test_device_alerts_and_unknown_faces_reach_admins(site: Site) -> None:
    offline = AlertEvent(code=EventCode.DEVICE_OFFLINE, gate_id="lobby", detail="gate lobby offline since 12:00")
    face = AlertEvent(code=EventCode.UNKNOWN_FACE, gate_id="lobby", detail="unregistered face refused")
    await site.probe.publish(topics.alert_event("device_offline"), offline)
    await site.probe.publish(topics.alert_event("unknown_face"), face)
    await site.probe.publish(topics.alert_event("malformed_request"),
                             AlertEvent(code=EventCode.MALFORMED_MESSAGE, gate_id="lobby", detail="junk"))
    await eventually(lambda: len(site.to("admin-1")) == 2)
    await asyncio.sleep(0.3)
    by_event = {n.data["event"]: n for n in site.to("admin-1")}
    assert set(by_event) == {"DEVICE_OFFLINE", "UNKNOWN_FACE"}
    assert by_event["DEVICE_OFFLINE"].title == "Gate lobby offline"
    assert by_event["DEVICE_OFFLINE"].body == "gate lobby offline since 12:00"
    assert len(site.to("admin-2")) == 2


async def test_strangers_reach_the_buildings_residents_when_asked(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                                  embedded_store: Store, sms: HttpStandIn) -> None:
    await asyncio.to_thread(embedded_store.put_gate, Gate(id="lobby", name="Lobby A", building="A"))
    await asyncio.to_thread(embedded_store.put_user, User(id="U2", name="Lee", building="B", unit="0101"))
    await asyncio.to_thread(embedded_store.put_user, User(id="S1", name="Guard", kind=UserKind.STAFF, building="A"))
    async with _site(tmp_path, amqtt_broker, embedded_store, sms, strangers_to_residents=True) as site:
        face = AlertEvent(code=EventCode.UNKNOWN_FACE, gate_id="lobby", detail="unregistered face refused")
        await site.probe.publish(topics.alert_event("unknown_face"), face)
        await eventually(lambda: site.to("U1"))
        await asyncio.sleep(0.3)
        [note] = site.to("U1")  # the active resident of building A, once
        assert note.title == "Unknown face at lobby"
        assert site.to("U2") == [] and site.to("U9") == [] and site.to("S1") == []
        assert len(site.to("admin-1")) == 1

"""Two edges of the ACL that a plain publish test misses: a last will naming another gate, and
the MQTT 5 PUBACK reason code a refused publish gets from Mosquitto."""

from __future__ import annotations

import asyncio
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from config.settings import MqttSettings
from messaging.client import tls_context_for
from tests.conftest import eventually
from tests.security.broker_fixture import SecureBroker, connected, running_secure_broker
from tests.security.site_fixture import Site


def _connect_with_will_then_vanish(settings: MqttSettings, client_id: str, will_topic: str) -> None:
    """Connect with a retained last will, then drop the TCP connection without DISCONNECT."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    client.tls_set_context(tls_context_for(settings))
    client.will_set(will_topic, b"offline", qos=1, retain=True)
    client.connect(settings.host, settings.port, keepalive=30)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        client.loop(timeout=0.05)  # CONNACK (accepted or refused)
    sock = client.socket()
    if sock is not None:
        sock.close()


async def test_a_last_will_on_another_gates_status_is_never_published(secure: SecureBroker) -> None:
    async with connected(secure.trusted(), "observer", "gates/+/status") as observer:
        await asyncio.sleep(0.1)
        gate1 = secure.as_identity("gate-1")
        await asyncio.to_thread(_connect_with_will_then_vanish, gate1, "gate-1-evil", "gates/gate-2/status")
        # Control: its own will does go out when it vanishes, so wills do fire on this broker.
        await asyncio.to_thread(_connect_with_will_then_vanish, gate1, "gate-1-good", "gates/gate-1/status")
        await eventually(lambda: any(m.topic == "gates/gate-1/status" for m in observer.seen))
        await asyncio.sleep(0.3)
        assert [m for m in observer.seen if m.topic == "gates/gate-2/status"] == []


async def test_mqtt5_refused_publish_gets_not_authorized(site: Site) -> None:
    async with running_secure_broker("mosquitto", site) as b:
        settings = b.as_identity("gate-1")
        codes: dict[str, int] = {}
        done = threading.Event()

        def on_publish(client: paho.Client, userdata: object, mid: int, rc: ReasonCode, props: object) -> None:
            codes[{1: "other", 2: "own"}.get(mid, "?")] = rc.value
            if len(codes) == 2:
                done.set()

        def run() -> None:
            client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gate-1-v5", protocol=paho.MQTTv5)
            client.tls_set_context(tls_context_for(settings))
            client.on_publish = on_publish
            client.connect(settings.host, settings.port)
            client.loop_start()
            try:
                client.publish("access/request/gate-2", b"x", qos=1).wait_for_publish(5)
                client.publish("access/request/gate-1", b"x", qos=1).wait_for_publish(5)
                done.wait(5)
            finally:
                client.disconnect()
                client.loop_stop()

        await asyncio.to_thread(run)
        assert codes["other"] == 0x87  # Not authorized
        assert codes["own"] < 0x80  # success (0x10: no subscriber yet)

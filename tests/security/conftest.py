"""Fixtures shared by the broker security tests: a site PKI and a secure broker of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.security.broker_fixture import SecureBroker, running_secure_broker
from tests.security.site_fixture import Site, build_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return build_site(tmp_path / "pki")


@pytest.fixture(params=["mosquitto", "amqtt"])
async def secure(request: pytest.FixtureRequest, site: Site) -> AsyncIterator[SecureBroker]:
    async with running_secure_broker(request.param, site) as b:
        yield b

"""set_pin, list_users, query_audit and CSV import over a real broker and the embedded store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from schemas.base import utc_now
from schemas.codes import CredentialType
from store.keyed_hash import KeyedHasher, pin_secret
from store.repository import Store
from tests.admin_worker.test_enrollment import Admin, running_admin
from tests.conftest import BrokerInfo


@pytest.fixture
async def admin(tmp_path: Path, amqtt_broker: BrokerInfo, embedded_store: Store,
                hasher: KeyedHasher) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path, amqtt_broker, embedded_store, hasher) as a:
        yield a


async def _user(admin: Admin, user_id: str, name: str, building: str = "A", unit: str = "1203") -> None:
    reply = await admin.send({"action": "create_user", "user_id": user_id, "name": name, "building": building,
                              "unit": unit})
    assert reply.ok, reply


async def test_set_pin_scoped_by_unit_replaces_old_and_refuses_weak(admin: Admin, hasher: KeyedHasher) -> None:
    await _user(admin, "U1", "Kim", unit="1203")
    await _user(admin, "U2", "Lee", unit="1203")
    await _user(admin, "U3", "Park", unit="0801")
    assert (await admin.send({"action": "set_pin", "user_id": "U1", "pin": "4815"})).ok
    taken = await admin.send({"action": "set_pin", "user_id": "U2", "pin": "4815"})
    assert not taken.ok and taken.error is not None and taken.error.startswith("PIN_UNAVAILABLE")
    assert "U1" not in taken.error and taken.matched_user_id is None  # never says whose PIN it is
    assert (await admin.send({"action": "set_pin", "user_id": "U3", "pin": "4815"})).ok  # other unit: fine
    for weak in ("1111", "1234", "98765", "8901"):
        reply = await admin.send({"action": "set_pin", "user_id": "U2", "pin": weak})
        assert not reply.ok and reply.error is not None and reply.error.startswith("WEAK_PIN"), weak
    bad = await admin.send({"action": "set_pin", "user_id": "U2", "pin": "12a4"})
    assert not bad.ok and bad.error is not None and bad.error.startswith("MALFORMED_COMMAND")

    # Replacing U1's PIN leaves exactly one PIN credential, the new one.
    assert (await admin.send({"action": "set_pin", "user_id": "U1", "pin": "2718"})).ok
    pins = [c for c in admin.store.iter_credentials([CredentialType.PIN]) if c.user_id == "U1"]
    assert [p.lookup_key for p in pins] == [hasher.lookup_key(CredentialType.PIN, pin_secret("1203", "2718"))]
    assert "2718" not in str(list(admin.store.credentials.find())) + str(list(admin.store.audit.find()))


async def test_list_users_by_building_unit_and_text_with_credential_counts(admin: Admin) -> None:
    await _user(admin, "U1", "Kim Minsu", building="A", unit="1203")
    await _user(admin, "U2", "kimura Ken", building="A", unit="0801")
    await _user(admin, "U3", "Lee Jiwoo", building="B", unit="1203")
    assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "C-1"})).ok
    assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "C-2"})).ok
    assert (await admin.send({"action": "set_pin", "user_id": "U1", "pin": "4815"})).ok

    everyone = await admin.send({"action": "list_users"})
    assert everyone.ok and everyone.total == 3 and [u.id for u in everyone.users] == ["U2", "U1", "U3"]
    u1 = next(u for u in everyone.users if u.id == "U1")
    assert (u1.cards, u1.faces, u1.has_pin) == (2, 0, True)

    in_a = await admin.send({"action": "list_users", "building": "A"})
    assert {u.id for u in in_a.users} == {"U1", "U2"}
    unit = await admin.send({"action": "list_users", "building": "A", "unit": "1203"})
    assert [u.id for u in unit.users] == ["U1"]
    by_name = await admin.send({"action": "list_users", "text": "KIM"})
    assert {u.id for u in by_name.users} == {"U1", "U2"}
    regex_chars = await admin.send({"action": "list_users", "text": ".*"})
    assert regex_chars.ok and regex_chars.users == []  # the text is a literal prefix, not a pattern
    page = await admin.send({"action": "list_users", "limit": 1, "offset": 1})
    assert page.total == 3 and [u.id for u in page.users] == ["U1"]

    # Queries are answered but not audited (the audit trail is for changes).
    assert all(r.action != "list_users" for r in admin.store.query_audit())


async def test_query_audit_by_user_code_and_time(admin: Admin) -> None:
    start = utc_now()
    await _user(admin, "U1", "Kim")
    await _user(admin, "U2", "Lee")
    assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "C-9"})).ok
    assert not (await admin.send({"action": "add_card", "user_id": "U2", "acc_id": "C-9"})).ok

    mine = await admin.send({"action": "query_audit", "target": "U1"})
    # U1's own two actions and the refused attempt that matched U1's card.
    assert [a.action for a in mine.audit] == ["add_card", "add_card", "create_user"]
    dups = await admin.send({"action": "query_audit", "code": "USER_DUPLICATE_CREDENTIAL"})
    assert len(dups.audit) == 1 and dups.audit[0].target == "U2" and dups.audit[0].matched_user_id == "U1"
    assert dups.audit[0].sub_code == "CARD" and dups.audit[0].actor == "A1"
    window = await admin.send({"action": "query_audit", "since": start.isoformat(),
                               "until": (start + timedelta(hours=1)).isoformat()})
    assert len(window.audit) == 4
    future = await admin.send({"action": "query_audit", "since": (start + timedelta(hours=1)).isoformat()})
    assert future.ok and future.audit == []


CSV_OK = """user_id,name,building,unit,phone,groups,card_id
R1,Kim Minsu,A,1203,010-1234-5678,,CARD-R1
R2,Lee Jiwoo,A,1204,,,
R3,Park Seo,B,0101,,,CARD-R3
"""


async def test_csv_import_applies_all_rows(admin: Admin) -> None:
    dry = await admin.send({"action": "import_residents", "csv": CSV_OK, "dry_run": True})
    assert dry.ok and [r.outcome for r in dry.import_rows] == ["OK", "OK", "OK"]
    assert admin.store.get_user("R1") is None  # a dry run writes nothing

    reply = await admin.send({"action": "import_residents", "csv": CSV_OK})
    assert reply.ok and reply.total == 3
    r1 = admin.store.get_user("R1")
    assert r1 is not None and (r1.building, r1.unit, r1.phone) == ("A", "1203", "010-1234-5678")
    listed = await admin.send({"action": "list_users", "text": "R"})
    assert {u.id: u.cards for u in listed.users} == {"R1": 1, "R2": 0, "R3": 1}
    assert "CARD-R1" not in str(list(admin.store.audit.find()))


async def test_csv_import_with_bad_rows_imports_nothing_and_reports_each(admin: Admin) -> None:
    await _user(admin, "U1", "Existing Owner")
    assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "CARD-TAKEN"})).ok
    csv_text = """user_id,name,building,unit,phone,groups,card_id
N1,Good Row,A,1,,,CARD-N1
U1,Already There,A,2,,,
N3,Holds Taken Card,A,3,,,CARD-TAKEN
N4,Bad Phone,A,4,not-a-phone,,
N1,Same Id Again,A,5,,,
N6,Same Card In File,A,6,,,CARD-N1
N7,Unknown Group,A,7,,nosuchgroup,
bad id!,Bad Id,A,8,,,
"""
    reply = await admin.send({"action": "import_residents", "csv": csv_text})
    assert not reply.ok and reply.error is not None and reply.error.startswith("IMPORT_REFUSED: 7 of 8")
    outcomes = {r.row: r.outcome for r in reply.import_rows}
    assert outcomes == {1: "OK", 2: "USER_EXISTS", 3: "DUPLICATE_CARD", 4: "INVALID", 5: "DUPLICATE_IN_FILE",
                        6: "DUPLICATE_IN_FILE", 7: "UNKNOWN_GROUP", 8: "INVALID"}
    assert reply.import_rows[2].matched_user_id == "U1"
    assert "not-a-phone" not in str(reply.import_rows) and "CARD-TAKEN" not in str(reply.import_rows)
    assert admin.store.get_user("N1") is None  # nothing half-imported
    assert admin.store.users.count_documents({}) == 1

    refused = admin.store.query_audit(code="ADMIN_COMMAND_REFUSED")
    assert len(refused) == 1 and refused[0].action == "import_residents"


async def test_csv_import_bad_file_refused(admin: Admin) -> None:
    for text in ("id,nom\nR1,x\n", "user_id,name\n", "user_id,name,password\nR1,x,y\n"):
        reply = await admin.send({"action": "import_residents", "csv": text})
        assert not reply.ok and reply.error is not None and reply.error.startswith("BAD_IMPORT_FILE"), text
    extra_cells = await admin.send({"action": "import_residents", "csv": "user_id,name\nR1,Kim,surplus\n"})
    assert not extra_cells.ok and extra_cells.import_rows[0].outcome == "INVALID"
    assert admin.store.users.count_documents({}) == 0

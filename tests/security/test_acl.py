"""The rendered topic ACL, read back and queried as the embedded broker does (the same rules are
enforced by a real Mosquitto in test_broker_security.py)."""

from __future__ import annotations

import pytest

from security.acl import AclError, AclFile, render_acl
from security.identities import Identity, IdentityError, Role, SiteIdentities

SITE = SiteIdentities(site="s", identities=[
    Identity(name="gate-1", role=Role.GATE), Identity(name="gate-2", role=Role.GATE),
    Identity(name="auth-1", role=Role.AUTH), Identity(name="admin-1", role=Role.ADMIN),
    Identity(name="visitor-1", role=Role.VISITOR), Identity(name="sync-1", role=Role.SYNC),
    Identity(name="console-1", role=Role.CONSOLE), Identity(name="bridge-1", role=Role.BRIDGE),
    Identity(name="ops", role=Role.OPERATOR)])
ACL = AclFile.parse(render_acl(SITE))

PUBLISH = [
    ("gate-1", "access/request/gate-1", True), ("gate-1", "access/request/gate-2", False),
    ("gate-1", "gates/gate-1/status", True), ("gate-1", "gates/gate-2/status", False),
    ("gate-1", "gates/gate-1/logs", True), ("gate-1", "gates/gate-1/heartbeat", True),
    ("gate-1", "access/response/gate-1", False), ("gate-1", "gates/gate-1/sync", False),
    ("gate-1", "events/access/gate-1", False), ("gate-1", "admin/command", False),
    ("auth-1", "access/response/gate-2", True), ("auth-1", "events/access/gate-2", True),
    ("auth-1", "access/request/gate-1", False), ("auth-1", "admin/reply/x", False),
    ("admin-1", "admin/reply/console-1", True), ("admin-1", "events/enroll/U1", True),
    ("admin-1", "admin/command", False),
    ("visitor-1", "visitor/reply/r1", True), ("visitor-1", "visitor/register", False),
    ("sync-1", "gates/gate-1/sync", True), ("sync-1", "gates/gate-1/ping", True),
    ("sync-1", "gates/gate-1/logs/ack", True), ("sync-1", "gates/gate-1/status", False),
    ("console-1", "admin/command", True), ("console-1", "events/enroll/U1", False),
    ("bridge-1", "visitor/register", True), ("bridge-1", "visitor/reply/r1", False),
    ("ops", "events/alert/x", False),
    (None, "events/alert/x", False), (None, "access/request/gate-1", False),
    ("stranger", "access/request/stranger", False),  # a name not in the identity list has no rule at all
    ("stranger", "access/request/gate-1", False),
    ("gate-1", "access/request/+", False),
]

SUBSCRIBE = [
    ("gate-1", "access/response/gate-1", True), ("gate-1", "access/response/gate-2", False),
    ("gate-1", "access/response/+", False), ("gate-1", "#", False), ("gate-1", "gates/gate-1/#", False),
    ("gate-1", "gates/gate-1/sync", True), ("gate-1", "gates/gate-1/ping", True),
    ("gate-1", "gates/gate-1/logs/ack", True), ("gate-1", "gates/gate-2/sync", False),
    ("auth-1", "$share/auth/access/request/+", True), ("auth-1", "access/request/+", True),
    ("auth-1", "access/request/#", False), ("auth-1", "$share//access/request/+", False),
    ("admin-1", "$share/admin/admin/command", True), ("admin-1", "admin/reply/+", False),
    ("sync-1", "gates/+/status", True), ("sync-1", "gates/+/logs", True), ("sync-1", "gates/+/heartbeat", True),
    ("sync-1", "gates/+/sync", False),
    ("console-1", "admin/reply/console-1", True), ("console-1", "admin/reply/admin", True),
    ("console-1", "access/response/+", False),
    ("console-1", "events/#", True), ("console-1", "gates/+/status", True),
    ("bridge-1", "visitor/reply/+", True), ("bridge-1", "events/#", False),
    ("ops", "events/#", True), ("ops", "events/access/+", True), ("ops", "#", False),
    ("ops", "access/request/+", False), (None, "events/#", False),
]


@pytest.mark.parametrize("user, topic, allowed", PUBLISH)
def test_publish(user: str | None, topic: str, allowed: bool) -> None:
    assert ACL.may_publish(user, "any-client-id", topic) is allowed


@pytest.mark.parametrize("user, topic_filter, allowed", SUBSCRIBE)
def test_subscribe(user: str | None, topic_filter: str, allowed: bool) -> None:
    assert ACL.may_subscribe(user, "any-client-id", topic_filter) is allowed


def test_receive_is_checked_per_topic() -> None:
    assert ACL.may_receive("gate-1", "c", "access/response/gate-1")
    assert not ACL.may_receive("gate-1", "c", "access/response/gate-2")
    assert ACL.may_receive("ops", "c", "events/access/lobby")


def test_the_client_id_grants_nothing() -> None:
    # A gate that names its client id after another gate gains nothing: rules follow the username.
    assert not ACL.may_publish("gate-1", "gate-2", "access/request/gate-2")


def test_a_name_smuggling_wildcards_matches_no_pattern() -> None:
    assert not ACL.may_publish("+", "c", "access/request/+")
    assert not ACL.may_subscribe("#", "c", "access/response/#")


def test_rendered_file_has_one_block_per_identity() -> None:
    text = render_acl(SITE)
    assert "user gate-1\ntopic write access/request/gate-1\n" in text
    assert "topic read access/response/gate-1\n" in text
    assert "user auth-1\ntopic read access/request/+" in text
    # No rule for everyone: an identity taken out of the list keeps nothing.
    assert "pattern" not in text and "%u" not in text and "%c" not in text


def test_an_identity_taken_out_of_the_list_keeps_no_right() -> None:
    acl = AclFile.parse(render_acl(SITE.without("gate-1")))
    assert not acl.may_publish("gate-1", "gate-1", "access/request/gate-1")
    assert not acl.may_receive("gate-1", "gate-1", "access/response/gate-1")
    assert acl.may_publish("gate-2", "gate-2", "access/request/gate-2")


def test_a_name_cannot_hold_two_roles() -> None:
    with pytest.raises(IdentityError, match="already a gate"):
        SITE.with_identity(Identity(name="gate-1", role=Role.AUTH))
    assert SITE.with_identity(Identity(name="gate-1", role=Role.GATE)) is SITE


def test_unknown_directives_are_refused() -> None:
    with pytest.raises(AclError, match="line 2"):
        AclFile.parse("user a\nplugin evil.so\n")


def test_deny_rules_win() -> None:
    acl = AclFile.parse("user a\ntopic readwrite x/#\ntopic deny x/secret\n")
    assert acl.may_publish("a", "c", "x/open") and not acl.may_publish("a", "c", "x/secret")
    assert not acl.may_subscribe("a", "c", "x/#")  # it would include x/secret

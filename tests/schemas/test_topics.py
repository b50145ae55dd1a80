import pytest

from schemas import topics
from schemas.errors import TopicError


def test_build_and_parse() -> None:
    assert topics.access_request("gate-1") == "access/request/gate-1"
    assert topics.gate_of_access_request("access/request/gate-1") == "gate-1"
    assert topics.gate_of_access_response(topics.access_response("g2")) == "g2"
    assert topics.gate_of_status(topics.gate_status("g3")) == "g3"
    assert topics.access_event("g1") == "events/access/g1"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "gate 1", "x" * 65, "g\n"])
def test_ids_cannot_break_topics(bad: str) -> None:
    with pytest.raises(TopicError):
        topics.access_request(bad)


@pytest.mark.parametrize("topic", ["access/request", "access/request/a/b", "access/response/g1",
                                   "access/request/+", "x/request/g1"])
def test_parse_rejects_other_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.gate_of_access_request(topic)


def test_matching_and_shared() -> None:
    shared = topics.shared(topics.ACCESS_REQUEST_FILTER)
    assert shared == "$share/auth/access/request/+"
    assert topics.unshared(shared) == "access/request/+"
    assert topics.matches(shared, "access/request/g1")
    assert not topics.matches(shared, "access/request/g1/x")
    assert topics.matches("events/#", "events/access/g1")
    assert not topics.matches("gates/+/status", "gates/g1/sync")
    with pytest.raises(TopicError):
        topics.unshared("$share/auth")

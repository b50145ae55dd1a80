"""The 1:N index: exact top-1, several templates per user, removal, the duplicate scan."""

from __future__ import annotations

import numpy as np

from face_engine.index import FaceIndex


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, 512)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_top1_is_exact_and_survives_growth_and_removal() -> None:
    rng = np.random.default_rng(7)
    vecs = _unit(rng, 3000)
    index = FaceIndex(capacity=16)  # forces several doublings
    for i, v in enumerate(vecs):
        index.add(f"t{i}", f"U{i // 3}", v)  # three templates per user
    assert len(index) == 3000
    for i in (0, 1234, 2999):
        m = index.search(vecs[i])
        assert m is not None and m.template_id == f"t{i}" and m.user_id == f"U{i // 3}" and m.score > 0.999
    assert index.remove("t1234") and not index.remove("t1234")
    m = index.search(vecs[1234])
    assert m is not None and m.template_id != "t1234" and m.score < 0.3
    # The row swapped into the hole is still found.
    m = index.search(vecs[2999])
    assert m is not None and m.template_id == "t2999"
    assert index.remove_user("U0") == 3 and "t0" not in index


def test_exclude_user_and_first_above() -> None:
    rng = np.random.default_rng(3)
    a, b = _unit(rng, 2)
    index = FaceIndex()
    index.add("a1", "UA", a)
    index.add("b1", "UB", b)
    assert index.search(a, exclude_user="UA") is not None
    assert index.search(a, exclude_user="UA").user_id == "UB"  # type: ignore[union-attr]
    assert index.first_above(a, 0.9) is not None
    assert index.first_above(a, 0.9, exclude_user="UA") is None  # re-enrolling one's own face is no duplicate
    assert FaceIndex().search(a) is None


def test_replacing_a_template_keeps_one_row() -> None:
    rng = np.random.default_rng(5)
    a, b = _unit(rng, 2)
    index = FaceIndex()
    index.add("t", "U1", a)
    index.add("t", "U1", b)
    assert len(index) == 1 and index.search(b).score > 0.999  # type: ignore[union-attr]


def test_concurrent_search_never_pairs_a_row_with_another_users_id() -> None:
    """The worker searches on its inference thread while change events add and remove on the loop."""
    import threading

    rng = np.random.default_rng(11)
    vecs = _unit(rng, 4000)
    index = FaceIndex(capacity=16)
    for i in range(2000):
        index.add(f"t{i}-U{i}", f"U{i}", vecs[i])
    stop = threading.Event()
    wrong: list[str] = []

    def searcher() -> None:
        k = 0
        while not stop.is_set():
            m = index.search(vecs[k % 4000])
            if m is not None and not m.template_id.endswith(f"-{m.user_id}"):
                wrong.append(m.template_id)
            k += 7

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(2000, 4000):  # grow (reallocations) and churn (row swaps) under the searchers
        index.add(f"t{i}-U{i}", f"U{i}", vecs[i])
        index.remove(f"t{i - 2000}-U{i - 2000}")
    stop.set()
    for t in threads:
        t.join()
    assert wrong == []
    assert len(index) == 2000

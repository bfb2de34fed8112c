"""An SMS link answers only the round it was sent in. An offer that was notified, held and released again
gets a new round and a new link; the first link must not confirm the second round (it did: the
confirmation checked the offer's round, not the message's)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.api.conftest import confirm_offer, copy_world


def test_a_link_of_an_earlier_round_cannot_confirm_a_later_one(template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path, confirm_ip_limit=1000)  # one phone opens every link here
    first = w.notify("c-kexing")
    notified = w.offers("c-kexing", "notified")
    assert len(first) == len(notified) > 0
    phone = TestClient(w.app)
    csrf = {path: re.search(r'name="csrf" value="([^"]+)"', phone.get(path).text) for path in first}
    assert all(csrf.values())  # each first-round page offers to confirm
    # Staff put the offers on hold and release them again: a second round, with new links.
    assert (
        w.bulk("/api/review/hold", "hold", {"offers": notified, "reason": "核实联系电话"}).status_code == 200
    )
    assert w.bulk("/api/review/release", "release", {"offers": notified}).status_code == 200
    second = w.notify("c-kexing")
    assert len(second) == len(notified) and not set(second) & set(first)
    for path in first:
        page = phone.get(path)
        assert "确认领取</button>" not in page.text
        r = phone.post(f"{path}/confirm", data={"csrf": csrf[path].group(1)})  # type: ignore[union-attr]
        assert r.status_code == 404, r.text  # the one neutral page of an unusable link
    assert w.offers("c-kexing", "notified") == notified  # no first-round link confirmed anything
    assert confirm_offer(phone, second[0]).status_code == 200
    assert len(w.offers("c-kexing", "confirmed")) == 1

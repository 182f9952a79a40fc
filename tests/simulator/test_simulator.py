"""The Listrak simulator over real loopback HTTP: auth, routes, paging, filters, faults, CLI."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from listrak_source.simulator import ListrakSimulator

LIST = 1001
FIELD = 678
T0 = datetime(2024, 1, 15, 17, 0, 0, tzinfo=UTC)  # 12:00:00 in New York (EST)
_TLS = ssl.create_default_context()  # building one per httpx client costs ~50 ms


def http(**kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=_TLS, timeout=5, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    with http() as client:
        return client.post(url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    with http() as client:
        return client.get(url, **kwargs)


@pytest.fixture
def sim() -> Iterator[ListrakSimulator]:
    with ListrakSimulator() as s:
        s.add_list(LIST, "Main", [FIELD])
        yield s


@pytest.fixture
def api(sim: ListrakSimulator) -> Iterator[httpx.Client]:
    with http(base_url=sim.base_url) as client:
        client.headers["Authorization"] = f"Bearer {token(sim)}"
        yield client


def token(sim: ListrakSimulator, **form: str) -> str:
    data = {"grant_type": "client_credentials", "client_id": "sim-client"}
    data |= {"client_secret": "sim-secret", **form}
    response = post(sim.auth_url, data=data)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def contacts_url(list_id: int = LIST) -> str:
    return f"/List/{list_id}/Contact"


def scan(api: httpx.Client, list_id: int = LIST, /, **params: Any) -> list[dict[str, Any]]:
    """Page to the end, URL-encoding each cursor as a correct client does."""
    found: list[dict[str, Any]] = []
    cursor: str | None = "Start"
    while cursor is not None:
        response = api.get(contacts_url(list_id), params={**params, "cursor": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        cursor = body["nextPageCursor"]
    return found


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["error"] == code
    assert body["message"]


# --- tokens and auth ---------------------------------------------------------------------


def test_token_is_issued_for_the_right_credentials(sim: ListrakSimulator) -> None:
    form = {"grant_type": "client_credentials", "client_id": "sim-client"}
    response = post(sim.auth_url, data={**form, "client_secret": "sim-secret"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3599
    assert body["access_token"]
    assert sim.token_requests == 1
    assert sim.requests == []  # token requests are counted, not logged


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "x"},
        {"grant_type": "client_credentials", "client_id": "nope", "client_secret": "sim-secret"},
        {"grant_type": "password", "client_id": "sim-client", "client_secret": "sim-secret"},
        {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "é"},
        {},
    ],
)
def test_token_refused_for_wrong_credentials(sim: ListrakSimulator, form: dict[str, str]) -> None:
    response = post(sim.auth_url, data=form)
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid Credentials"}


def test_api_needs_a_valid_bearer_token(sim: ListrakSimulator) -> None:
    url = f"{sim.base_url}/List"
    assert_error(get(url), 401, "ERROR_UNAUTHORIZED")
    assert_error(get(url, headers={"Authorization": "Bearer nope"}), 401, "ERROR_UNAUTHORIZED")
    good = {"Authorization": f"Bearer {token(sim)}"}
    assert get(url, headers=good).status_code == 200
    assert [r.status for r in sim.requests] == [401, 401, 200]


def test_short_lived_tokens_expire(sim: ListrakSimulator) -> None:
    sim.faults.token_ttl = 0.3
    first = post(
        sim.auth_url,
        data={"grant_type": "client_credentials", "client_id": "sim-client"}
        | {"client_secret": "sim-secret"},
    ).json()
    assert first["expires_in"] == 0
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert get(f"{sim.base_url}/List", headers=headers).status_code == 200
    time.sleep(0.35)
    assert_error(get(f"{sim.base_url}/List", headers=headers), 401, "ERROR_UNAUTHORIZED")


def test_expire_tokens_and_reject_auth(sim: ListrakSimulator, api: httpx.Client) -> None:
    assert api.get("/List").status_code == 200
    sim.faults.expire_tokens()
    assert_error(api.get("/List"), 401, "ERROR_UNAUTHORIZED")
    api.headers["Authorization"] = f"Bearer {token(sim)}"
    assert api.get("/List").status_code == 200
    sim.faults.reject_auth = True
    api.headers["Authorization"] = f"Bearer {token(sim)}"
    assert_error(api.get("/List"), 401, "ERROR_UNAUTHORIZED")
    sim.faults.reset()
    assert api.get("/List").status_code == 200


def test_token_faults(sim: ListrakSimulator) -> None:
    sim.faults.fail_token_next(1, status=503)
    form = {"grant_type": "client_credentials", "client_id": "sim-client"}
    form["client_secret"] = "sim-secret"
    assert post(sim.auth_url, data=form).status_code == 503
    assert post(sim.auth_url, data=form).status_code == 200
    assert get(sim.auth_url).status_code == 405
    assert sim.token_requests == 3


# --- lists and profile fields ------------------------------------------------------------


def test_lists_and_fields(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.add_list(2002, "Second")
    lists = api.get("/List").json()
    assert lists["status"] == 200
    assert [(x["listId"], x["listName"]) for x in lists["data"]] == [
        (LIST, "Main"),
        (2002, "Second"),
    ]
    one = api.get(f"/List/{LIST}").json()
    assert one["data"]["listId"] == LIST
    groups = api.get(f"/List/{LIST}/SegmentationFieldGroup").json()["data"]
    assert len(groups) == 1
    group = groups[0]["segmentationFieldGroupId"]
    fields = api.get(f"/List/{LIST}/SegmentationFieldGroup/{group}/SegmentationField").json()
    assert fields["data"] == [
        {
            "segmentationFieldId": FIELD,
            "segmentationFieldGroupId": group,
            "segmentationFieldName": f"Field {FIELD}",
            "dataType": "Text",
        }
    ]
    assert api.get(f"/List/{LIST}/SegmentationFieldGroup/{group}").json()["data"] == groups[0]


@pytest.mark.parametrize(
    "path",
    [
        "/List/999",
        "/List/999/Contact",
        "/List/abc",
        f"/List/{LIST}/SegmentationFieldGroup/1",
        f"/List/{LIST}/SegmentationFieldGroup/1/SegmentationField",
        "/Nothing",
        f"/List/{LIST}/Contact/x/y",
    ],
)
def test_unknown_resources_are_404(api: httpx.Client, path: str) -> None:
    assert_error(api.get(path), 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE")


def test_wrong_method_is_405_and_logged(sim: ListrakSimulator, api: httpx.Client) -> None:
    assert_error(api.post(contacts_url(), json=[]), 405, "ERROR_METHOD_NOT_ALLOWED")
    assert_error(api.delete(f"/List/{LIST}"), 405, "ERROR_METHOD_NOT_ALLOWED")
    assert [(r.method, r.status) for r in sim.requests] == [("POST", 405), ("DELETE", 405)]


# --- contact scans -----------------------------------------------------------------------


def test_contact_shape(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.set_now(T0)
    sim.subscribe(LIST, "Ann@Example.com", {FIELD: "cust-1"})
    (contact,) = scan(api)
    assert contact["emailAddress"] == "Ann@Example.com"
    assert contact["subscriptionState"] == "Subscribed"
    assert contact["subscribeDate"] == "2024-01-15T12:00:00"  # US Eastern, no offset
    assert contact["segmentationFieldValues"] == []
    for key in ("resubscribeDate", "unsubscribeDate", "unsubscribeMethod", "externalContactID"):
        assert contact[key] is None
    assert contact["emailKey"] and contact["universalEmailKey"]
    assert contact["subscribeMethod"]


def test_paging_to_the_end_with_encoded_cursors(sim: ListrakSimulator, api: httpx.Client) -> None:
    emails = sim.seed(LIST, 2500)
    first = api.get(contacts_url()).json()
    assert len(first["data"]) == 1000  # the default count
    cursor = first["nextPageCursor"]
    assert {"+", "/", "="} <= set(cursor)
    seen = [c["emailAddress"] for c in scan(api, count=1000)]
    assert len(seen) == len(set(seen)) == 2500
    assert set(seen) == set(emails)
    assert seen != sorted(seen)  # neither email order...
    pages = [r for r in sim.requests if r.path.endswith("/Contact")]
    assert pages[-1].query["cursor"] != "Start"
    last = api.get(contacts_url(), params={"cursor": pages[-1].query["cursor"], "count": 1000})
    assert last.json()["nextPageCursor"] is None


def test_unencoded_or_garbled_cursor_is_400(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.add_list(2002)
    sim.seed(LIST, 30)
    sim.seed(2002, 30)
    cursor = api.get(contacts_url(), params={"count": 10}).json()["nextPageCursor"]
    raw = api.get(f"{contacts_url()}?count=10&cursor={cursor}")  # '+' decodes to a space
    assert_error(raw, 400, "ERROR_INVALID_PARAMETER")
    for bad in ["garbage", cursor[:-4], cursor.replace("A", "B", 1)]:
        response = api.get(contacts_url(), params={"count": 10, "cursor": bad})
        assert_error(response, 400, "ERROR_INVALID_PARAMETER")
    other_list = api.get(contacts_url(2002), params={"count": 10, "cursor": cursor})
    assert_error(other_list, 400, "ERROR_INVALID_PARAMETER")
    other_state = {"count": 10, "cursor": cursor, "subscriptionState": "Unsubscribed"}
    assert_error(api.get(contacts_url(), params=other_state), 400, "ERROR_INVALID_PARAMETER")


@pytest.mark.parametrize("count", ["0", "5001", "-1", "abc", "1.5"])
def test_count_out_of_range_is_400(sim: ListrakSimulator, api: httpx.Client, count: str) -> None:
    assert_error(api.get(contacts_url(), params={"count": count}), 400, "ERROR_INVALID_PARAMETER")


def test_count_limits(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.seed(LIST, 5001)
    assert len(api.get(contacts_url(), params={"count": 5000}).json()["data"]) == 5000
    one = api.get(contacts_url(), params={"count": 1}).json()
    assert len(one["data"]) == 1
    assert one["nextPageCursor"]


def test_subscription_state_parameter(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.seed(LIST, 5)
    sim.unsubscribe(LIST, "user000001@example.com")
    bad = api.get(contacts_url(), params={"subscriptionState": "Bounced"})
    assert_error(bad, 400, "ERROR_INVALID_PARAMETER")
    assert len(scan(api, subscriptionState="Subscribed")) == 4
    (gone,) = scan(api, subscriptionState="Unsubscribed")
    assert gone["emailAddress"].lower() == "user000001@example.com"
    assert gone["subscriptionState"] == "Unsubscribed"


def test_segmentation_fields(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.subscribe(LIST, "a@example.com", {FIELD: "cust-a", 679: "other"})
    sim.subscribe(LIST, "b@example.com")
    by_email = {c["emailAddress"]: c for c in scan(api, segmentationFieldIds=str(FIELD))}
    (value,) = by_email["a@example.com"]["segmentationFieldValues"]
    assert value["segmentationFieldId"] == FIELD
    assert value["value"] == "cust-a"
    assert isinstance(value["segmentationFieldGroupId"], int)
    assert by_email["b@example.com"]["segmentationFieldValues"] == []
    both = {c["emailAddress"]: c for c in scan(api, segmentationFieldIds=f"{FIELD},679")}
    assert len(both["a@example.com"]["segmentationFieldValues"]) == 2
    assert all(c["segmentationFieldValues"] == [] for c in scan(api))
    thirty = ",".join(str(i) for i in range(1, 31))
    assert api.get(contacts_url(), params={"segmentationFieldIds": thirty}).status_code == 200
    too_many = api.get(contacts_url(), params={"segmentationFieldIds": thirty + ",31"})
    assert_error(too_many, 400, "ERROR_TOO_MANY_SEGMENTATION_FIELDS")
    not_ints = api.get(contacts_url(), params={"segmentationFieldIds": "a,b"})
    assert_error(not_ints, 400, "ERROR_INVALID_PARAMETER")


def test_set_field_and_truth(sim: ListrakSimulator) -> None:
    sim.subscribe(LIST, " Mixed@Example.com ")
    sim.set_field(LIST, "mixed@example.com", FIELD, "u-1")
    sim.subscribe(LIST, "plain@example.com")
    sim.subscribe(LIST, "left@example.com")
    sim.unsubscribe(LIST, "left@example.com")
    assert sim.truth(LIST, FIELD) == {
        "mixed@example.com": {"email": "Mixed@Example.com", "user_id": "u-1"},
        "plain@example.com": {"email": "plain@example.com", "user_id": None},
    }
    sim.set_field(LIST, "mixed@example.com", FIELD, None)
    assert sim.truth(LIST, FIELD)["mixed@example.com"]["user_id"] is None
    assert sim.truth(LIST)["mixed@example.com"]["user_id"] is None


def test_seed_generates_mixed_case_and_field_values(sim: ListrakSimulator) -> None:
    emails = sim.seed(LIST, 1000, field_id=FIELD, field_ratio=0.5, seed=7)
    assert len(emails) == len(set(emails)) == 1000
    assert emails[0].lower() == "user000000@example.com"
    assert any(e != e.lower() for e in emails)
    truth = sim.truth(LIST, FIELD)
    with_id = [t for t in truth.values() if t["user_id"] is not None]
    assert 400 < len(with_id) < 600
    assert truth["user000123@example.com"]["user_id"] in (None, "cust-000123")
    assert sim.seed(LIST, 10)[0].lower() == "user001000@example.com"  # never reuses an address


def test_date_filters(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.set_now(T0)
    sim.subscribe(LIST, "early@example.com")
    sim.advance(timedelta(hours=1))
    sim.subscribe(LIST, "late@example.com")
    sim.unsubscribe(LIST, "early@example.com")
    sim.advance(timedelta(hours=1))
    sim.subscribe(LIST, "early@example.com")  # re-subscribed at 14:00 Eastern

    def emails(**params: str) -> set[str]:
        return {c["emailAddress"] for c in scan(api, **params)}

    assert emails(startDate="2024-01-15T13:00:00") == {"late@example.com"}
    assert emails(startDate="2024-01-15T12:00:01") == {"late@example.com"}
    assert emails(endDate="2024-01-15T13:00:00") == {"early@example.com"}  # end is exclusive
    assert emails(startDate="2024-01-15T14:00:00", useOriginalSubscribeDate="false") == {
        "early@example.com"
    }
    assert emails(startDate="2024-01-15T13:00:00", useOriginalSubscribeDate="false") == {
        "early@example.com",
        "late@example.com",
    }
    assert emails(startDate="2024-01-16") == set()
    (again,) = [c for c in scan(api) if c["emailAddress"] == "early@example.com"]
    assert again["resubscribeDate"] == "2024-01-15T14:00:00"


def test_unsubscribed_scans_filter_on_unsubscribe_date(
    sim: ListrakSimulator, api: httpx.Client
) -> None:
    sim.set_now(T0)
    sim.seed(LIST, 3)
    sim.unsubscribe(LIST, "user000000@example.com", method="Bounce")
    sim.advance(timedelta(days=1))
    sim.unsubscribe(LIST, "user000001@example.com")
    state = {"subscriptionState": "Unsubscribed"}
    (later,) = scan(api, startDate="2024-01-16T00:00:00", **state)
    assert later["emailAddress"].lower() == "user000001@example.com"
    assert later["unsubscribeDate"] == "2024-01-16T12:00:00"
    (first,) = scan(api, endDate="2024-01-16T00:00:00", **state)
    assert first["unsubscribeMethod"] == "Bounce"


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "2024-01-15T12:00:00Z", "15/01/2024"])
def test_malformed_dates_are_400(sim: ListrakSimulator, api: httpx.Client, value: str) -> None:
    for name in ("startDate", "endDate"):
        response = api.get(contacts_url(), params={name: value})
        assert_error(response, 400, "ERROR_INVALID_PARAMETER")


def test_set_now_needs_an_aware_datetime(sim: ListrakSimulator) -> None:
    with pytest.raises(ValueError, match="aware"):
        sim.set_now(datetime(2024, 1, 1))
    sim.set_now(T0)
    assert sim.now() == T0
    sim.set_now(None)
    assert sim.now() > T0


def test_unsubscribe_resubscribe_remove(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.subscribe(LIST, "a@example.com")
    sim.unsubscribe(LIST, "A@example.com")
    assert scan(api) == []
    assert len(scan(api, subscriptionState="Unsubscribed")) == 1
    sim.subscribe(LIST, "a@example.com", {FIELD: "x"})
    (back,) = scan(api, segmentationFieldIds=str(FIELD))
    assert back["subscriptionState"] == "Subscribed"
    assert back["resubscribeDate"] is not None
    assert back["segmentationFieldValues"][0]["value"] == "x"
    sim.remove(LIST, "a@example.com")
    assert scan(api) == [] == scan(api, subscriptionState="Unsubscribed")
    with pytest.raises(KeyError):
        sim.unsubscribe(LIST, "a@example.com")
    with pytest.raises(KeyError):
        sim.subscribe(4242, "a@example.com")


def test_no_duplicates_when_contacts_change_mid_scan(
    sim: ListrakSimulator, api: httpx.Client
) -> None:
    original = {e.lower() for e in sim.seed(LIST, 3000)}
    seen: list[str] = []
    body = api.get(contacts_url(), params={"count": 700}).json()
    seen += [c["emailAddress"].lower() for c in body["data"]]
    removed = sorted(original - set(seen))[:100]
    for email in removed:
        sim.remove(LIST, email)
    for i in range(500):
        sim.subscribe(LIST, f"new{i}@example.com")
    cursor = body["nextPageCursor"]
    while cursor:
        body = api.get(contacts_url(), params={"count": 700, "cursor": cursor}).json()
        seen += [c["emailAddress"].lower() for c in body["data"]]
        cursor = body["nextPageCursor"]
    assert len(seen) == len(set(seen))
    assert original - set(removed) <= set(seen)  # everyone present throughout is returned
    assert not set(removed) & set(seen[700:])


def test_raw_contacts_are_served_as_is(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.subscribe(LIST, "ok@example.com")
    sim.add_raw(LIST, {"emailAddress": 42, "subscriptionState": None})
    sim.add_raw(LIST, {"nonsense": True})
    data = scan(api, segmentationFieldIds=str(FIELD))
    assert {"nonsense": True} in data
    assert {"emailAddress": 42, "subscriptionState": None} in data
    assert len(data) == 3
    assert scan(api, subscriptionState="Unsubscribed") == []
    assert list(sim.truth(LIST)) == ["ok@example.com"]


# --- faults ------------------------------------------------------------------------------


def test_fail_next(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.faults.fail_next(2)
    assert_error(api.get("/List"), 500, "ERROR_UNHANDLED_EXCEPTION")
    assert_error(api.get("/List"), 500, "ERROR_UNHANDLED_EXCEPTION")
    assert api.get("/List").status_code == 200
    sim.faults.fail_next(1, status=503)
    assert api.get("/List").status_code == 503
    sim.faults.fail_next(5)
    sim.faults.reset()
    assert api.get("/List").status_code == 200
    assert [r.status for r in sim.requests] == [500, 500, 200, 503, 200]


def test_rate_limit_next(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.faults.rate_limit_next(1, retry_after=3)
    response = api.get(contacts_url())
    assert_error(response, 429, "ERROR_TOO_MANY_REQUESTS")
    assert response.headers["Retry-After"] == "3"
    assert api.get(contacts_url()).status_code == 200


def test_page_delay(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.faults.page_delay = 0.2
    started = time.monotonic()
    api.get(contacts_url())
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    api.get("/List")  # only Contact pages are slow
    assert time.monotonic() - started < 0.2


def test_die_after_page(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.seed(LIST, 50)
    sim.faults.die_after_page = 2
    page1 = api.get(contacts_url(), params={"count": 10}).json()
    page2 = api.get(contacts_url(), params={"count": 10, "cursor": page1["nextPageCursor"]})
    cursor = page2.json()["nextPageCursor"]
    dead = api.get(contacts_url(), params={"count": 10, "cursor": cursor})
    assert_error(dead, 500, "ERROR_UNHANDLED_EXCEPTION")
    assert api.get(contacts_url(), params={"count": 10}).status_code == 200  # new scans start
    sim.faults.die_after_page = None
    assert api.get(contacts_url(), params={"count": 10, "cursor": cursor}).status_code == 200


def test_stats_and_restart_on_the_same_port(sim: ListrakSimulator, api: httpx.Client) -> None:
    sim.seed(LIST, 120)
    assert len(scan(api, count=50)) == 120
    assert sim.stats.pages == 3
    assert sim.stats.contacts == 120
    assert sim.stats.ms_per_page > 0
    stats = get(sim.base_url.replace("/email/v1", "/_sim/stats")).json()
    assert stats["pages"] == 3
    url = sim.base_url
    sim.stop()
    with pytest.raises(httpx.TransportError):
        get(f"{url}/List", timeout=1)
    sim.start()
    assert sim.base_url == url
    assert api.get("/List").status_code == 200


# --- command line ------------------------------------------------------------------------


def test_cli_serves_until_sigterm() -> None:
    cmd = [sys.executable, "-m", "listrak_source.simulator", "--lists", "1001:120"]
    proc = subprocess.Popen([*cmd, "--field-id", "678"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        form = {"grant_type": "client_credentials", "client_id": info["client_id"]}
        form["client_secret"] = info["client_secret"]
        access = post(info["auth_url"], data=form).json()["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        with http(base_url=info["base_url"], headers=headers) as client:
            assert len(scan(client, segmentationFieldIds="678", count=5000)) == 120
        assert post(f"{info['segment_host']}/v1/batch", json={}).status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        assert code == 0


def test_cli_help() -> None:
    cmd = [sys.executable, "-m", "listrak_source.simulator", "--help"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "--lists" in result.stdout
    assert "SIGTERM" in result.stdout

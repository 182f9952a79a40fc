"""The bulk profile-field route over loopback: strict checks, imports, check boxes, switches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from listrak_source.simulator import ListrakSimulator

from ._support import BOX, LIST, TEXT_FIELD, assert_error, scan

URL = f"/List/{LIST}/Contact/SegmentationField"
T0 = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)


def item(email: str, *values: tuple[int, str]) -> dict[str, Any]:
    fields = [{"segmentationFieldId": fid, "value": v} for fid, v in values]
    return {"emailAddress": email, "segmentationFieldValues": fields}


def fields_of(api: httpx.Client, **params: str) -> dict[str, dict[int, str]]:
    """lower-cased email -> the values a scan reads back for both fields."""
    ids = {"segmentationFieldIds": f"{TEXT_FIELD},{BOX}", **params}
    return {
        c["emailAddress"].lower(): {
            v["segmentationFieldId"]: v["value"] for v in c["segmentationFieldValues"]
        }
        for c in scan(api, **ids)
    }


def states(api: httpx.Client) -> dict[str, str]:
    both = scan(api) + scan(api, subscriptionState="Unsubscribed")
    return {c["emailAddress"]: c["subscriptionState"] for c in both}


def test_accepted_values_apply_and_the_request_is_recorded(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    lsim.subscribe(LIST, "Ann@Example.com")
    lsim.subscribe(LIST, "bob@example.com", {BOX: "on"})
    body = [
        item("ann@example.com", (BOX, "on"), (TEXT_FIELD, "t-1")),
        item("bob@example.com", (BOX, "off")),
    ]
    response = api.post(URL, json=body)
    assert response.status_code == 201
    assert response.json() == {"status": 201, "resourceId": ""}
    assert fields_of(api) == {
        "ann@example.com": {BOX: "on", TEXT_FIELD: "t-1"},
        "bob@example.com": {},
    }
    (sent,) = lsim.bulk_requests
    assert (sent.list_id, sent.body, sent.status) == (str(LIST), body, 201)
    (job,) = lsim.imports
    assert job.state == "applied"
    assert job.results == {"ann@example.com": "updated", "bob@example.com": "updated"}


@pytest.mark.parametrize(
    ("value", "reads"),
    [
        ("on", "on"),
        ("TRUE", "on"),
        ("1", "on"),
        ("off", None),
        ("False", None),
        ("0", None),
        ("", "on"),
        (" ", "on"),
    ],
)
def test_check_box_values(
    lsim: ListrakSimulator, api: httpx.Client, value: str, reads: str | None
) -> None:
    lsim.subscribe(LIST, "a@example.com", {BOX: "on"})
    assert api.post(URL, json=[item("a@example.com", (BOX, value))]).status_code == 201
    assert fields_of(api)["a@example.com"].get(BOX) == reads


def test_how_a_box_reads_back_is_switchable(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.subscribe(LIST, "a@example.com")
    lsim.subscribe(LIST, "b@example.com", {BOX: "on"})
    lsim.faults.checked_value = "True"
    lsim.faults.unchecked_value = "off"
    body = [item("a@example.com", (BOX, "on")), item("b@example.com", (BOX, "off"))]
    assert api.post(URL, json=body).status_code == 201
    assert fields_of(api) == {"a@example.com": {BOX: "True"}, "b@example.com": {BOX: "off"}}


def test_text_values_are_set_and_a_blank_leaves_them(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    lsim.subscribe(LIST, "a@example.com", {TEXT_FIELD: "keep"})
    assert api.post(URL, json=[item("a@example.com", (TEXT_FIELD, ""))]).status_code == 201
    assert fields_of(api)["a@example.com"] == {TEXT_FIELD: "keep"}
    assert api.post(URL, json=[item("a@example.com", (TEXT_FIELD, "new"))]).status_code == 201
    assert fields_of(api)["a@example.com"] == {TEXT_FIELD: "new"}


def one(*values: dict[str, object]) -> dict[str, object]:
    """An item for a@example.com with these raw segmentationFieldValues entries."""
    return {"emailAddress": "a@example.com", "segmentationFieldValues": list(values)}


GOOD = item("b@example.com", (BOX, "on"))
# Each refused whole, the valid item before the faulty one included.
BAD_BODIES: list[object] = [
    {"emailAddress": "a@example.com"},
    [],
    [GOOD, "a@example.com"],
    [GOOD, {"segmentationFieldValues": [{"segmentationFieldId": BOX, "value": "on"}]}],
    [GOOD, {"emailAddress": "a@example.com"}],
    [GOOD, one()],
    [GOOD, one({"value": "on"})],
    [GOOD, one({"segmentationFieldId": BOX})],
    [GOOD, one({"segmentationFieldId": 4242, "value": "on"})],
    [GOOD, one({"segmentationFieldId": BOX, "value": 1})],
    [GOOD, one({"segmentationFieldId": BOX, "value": "maybe"})],
    [GOOD, one({"segmentationFieldId": "seventy-seven", "value": "x"})],
    [GOOD, one({"segmentationFieldId": True, "value": "x"})],
    [GOOD, item(" B@EXAMPLE.com", (TEXT_FIELD, "x"))],
    [
        GOOD,
        one(
            {"segmentationFieldId": BOX, "value": "on"},
            {"segmentationFieldId": BOX, "value": "off"},
        ),
    ],
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_invalid_bodies_are_refused_whole(
    lsim: ListrakSimulator, api: httpx.Client, body: object
) -> None:
    lsim.subscribe(LIST, "a@example.com")
    lsim.subscribe(LIST, "b@example.com")
    response = api.post(URL, json=body)
    assert_error(response, 400, "ERROR_INVALID_PARAMETER")
    assert "example.com" not in response.text
    assert fields_of(api) == {"a@example.com": {}, "b@example.com": {}}
    assert lsim.imports == []
    assert lsim.bulk_requests[-1].status == 400


def test_not_json_and_the_wrong_content_type(lsim: ListrakSimulator, api: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(api.post(URL, content=b"[{", headers=headers), 400, "ERROR_MALFORMED_REQUEST_BODY")
    assert lsim.bulk_requests[-1].body is None
    form = api.post(URL, content=b"[]", headers={"Content-Type": "text/plain"})
    assert_error(form, 415, "ERROR_UNSUPPORTED_CONTENT_TYPE")


def test_unknown_list_wrong_method_and_no_token(lsim: ListrakSimulator, api: httpx.Client) -> None:
    body = [item("a@example.com", (BOX, "on"))]
    missing = api.post("/List/999/Contact/SegmentationField", json=body)
    assert_error(missing, 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE")
    assert_error(api.put(URL, json=body), 405, "ERROR_METHOD_NOT_ALLOWED")
    anonymous = httpx.post(lsim.base_url + URL, json=body)
    assert_error(anonymous, 401, "ERROR_UNAUTHORIZED")
    assert [r.status for r in lsim.bulk_requests] == [404, 401]  # the PUT is not a bulk request


def test_never_a_subscription_change_whatever_the_policy(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    lsim.subscribe(LIST, "in@example.com")
    lsim.subscribe(LIST, "out@example.com")
    lsim.unsubscribe(LIST, "out@example.com")
    before = states(api)
    body = [item(e, (BOX, "on")) for e in ("in@example.com", "out@example.com", "new@example.com")]
    assert api.post(URL, json=body).status_code == 201
    assert lsim.imports[-1].results == {
        "in@example.com": "updated",
        "out@example.com": "skipped: unsubscribed",
        "new@example.com": "skipped: not a contact",
    }
    assert fields_of(api, subscriptionState="Unsubscribed") == {"out@example.com": {}}
    lsim.faults.nonmembers = lsim.faults.unsubscribed = "apply"
    assert api.post(URL, json=body).status_code == 201
    assert fields_of(api, subscriptionState="Unsubscribed") == {"out@example.com": {BOX: "on"}}
    assert states(api) == before
    lsim.subscribe(LIST, "new@example.com")  # parked values surface when it subscribes
    assert fields_of(api)["new@example.com"] == {BOX: "on"}


def test_imports_apply_after_the_delay_on_the_simulator_clock(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    lsim.set_now(T0)
    lsim.subscribe(LIST, "a@example.com")
    lsim.faults.import_delay = 60
    assert api.post(URL, json=[item("a@example.com", (BOX, "on"))]).status_code == 201
    assert fields_of(api)["a@example.com"] == {}
    lsim.advance(timedelta(seconds=59))
    assert fields_of(api)["a@example.com"] == {}
    lsim.advance(timedelta(seconds=1))
    assert fields_of(api)["a@example.com"] == {BOX: "on"}  # applied by the next request
    assert api.post(URL, json=[item("a@example.com", (BOX, "off"))]).status_code == 201
    assert lsim.imports[-1].state == "pending"
    assert lsim.apply_imports() == 1
    assert fields_of(api)["a@example.com"] == {}
    assert lsim.apply_imports() == 0


@pytest.mark.parametrize("status", [401, 400])
def test_beta_refusal(lsim: ListrakSimulator, api: httpx.Client, status: int) -> None:
    lsim.subscribe(LIST, "a@example.com")
    lsim.faults.refuse_beta = True
    lsim.faults.beta_status = status
    response = api.post(URL, json=[item("a@example.com", (BOX, "on"))])
    assert_error(response, status, "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE")
    assert api.get(f"/List/{LIST}/Contact").status_code == 200  # other routes still work
    assert lsim.imports == []


def test_dropped_imports_are_accepted_but_never_apply(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    lsim.subscribe(LIST, "a@example.com")
    lsim.faults.drop_imports = True
    assert api.post(URL, json=[item("a@example.com", (BOX, "on"))]).status_code == 201
    assert lsim.apply_imports() == 0
    assert fields_of(api)["a@example.com"] == {}
    assert lsim.imports[-1].state == "dropped"


def test_bulk_faults_leave_reads_alone(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.subscribe(LIST, "a@example.com")
    body = [item("a@example.com", (BOX, "on"))]
    lsim.faults.fail_bulk_next(1, status=503)
    lsim.faults.rate_limit_bulk_next(1, retry_after=7)
    assert scan(api)  # reads do not consume them
    assert_error(api.post(URL, json=body), 503, "ERROR_UNHANDLED_EXCEPTION")
    limited = api.post(URL, json=body)
    assert_error(limited, 429, "ERROR_TOO_MANY_REQUESTS")
    assert limited.headers["Retry-After"] == "7"
    lsim.faults.fail_next(1)  # the faults every route has apply here too
    assert_error(api.post(URL, json=body), 500, "ERROR_UNHANDLED_EXCEPTION")
    assert api.post(URL, json=body).status_code == 201
    assert [r.status for r in lsim.bulk_requests] == [503, 429, 500, 201]
    assert len(lsim.imports) == 1

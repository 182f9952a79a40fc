"""Contact reads over loopback: one contact, offset cursors, hostile values, endless empty pages,
profile field types."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from listrak_source.simulator import ListrakSimulator

from ._support import BOX, LIST, TEXT_FIELD, assert_error, page, scan

# --- one contact -------------------------------------------------------------------------


def test_one_contact_by_encoded_email_whatever_its_state(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    email = "Ann+news/x@Example.com"
    lsim.subscribe(LIST, email, {TEXT_FIELD: "cust-1", BOX: "on"})
    url = f"/List/{LIST}/Contact/{quote(email, safe='')}"
    body = api.get(url, params={"segmentationFieldIds": f"{BOX},{TEXT_FIELD}"}).json()
    assert body["status"] == 200
    contact = body["data"]
    assert contact["emailAddress"] == email
    assert {v["segmentationFieldId"]: v["value"] for v in contact["segmentationFieldValues"]} == {
        TEXT_FIELD: "cust-1",
        BOX: "on",
    }
    assert api.get(url).json()["data"]["segmentationFieldValues"] == []
    lsim.unsubscribe(LIST, email)
    gone = api.get(url.lower()).json()["data"]  # any case finds it
    assert gone["subscriptionState"] == "Unsubscribed"
    by_key = api.get(f"/List/{LIST}/Contact/{contact['emailKey']}").json()["data"]
    assert by_key["emailAddress"] == email


def test_one_contact_errors(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.subscribe(LIST, "a@example.com")
    missing = api.get(f"/List/{LIST}/Contact/nobody%40example.com")
    assert_error(missing, 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE")
    assert "nobody" not in missing.text
    assert_error(
        api.get("/List/999/Contact/a%40example.com"), 404, "ERROR_UNABLE_TO_LOCATE_RESOURCE"
    )
    too_many = {"segmentationFieldIds": ",".join(str(i) for i in range(31))}
    response = api.get(f"/List/{LIST}/Contact/a%40example.com", params=too_many)
    assert_error(response, 400, "ERROR_TOO_MANY_SEGMENTATION_FIELDS")
    assert_error(api.post(f"/List/{LIST}/Contact/a%40example.com"), 405, "ERROR_METHOD_NOT_ALLOWED")


# --- offset cursors ----------------------------------------------------------------------


def shifted_scan(lsim: ListrakSimulator, api: httpx.Client) -> tuple[list[str], str]:
    """Read page 1, unsubscribe its first contact, read the rest."""
    first = page(api, count=10)
    seen = [c["emailAddress"] for c in first["data"]]
    lsim.unsubscribe(LIST, seen[0])
    cursor = first["nextPageCursor"]
    while cursor is not None:
        body = page(api, cursor, count=10)
        seen += [c["emailAddress"] for c in body["data"]]
        cursor = body["nextPageCursor"]
    return seen, seen[0]


def test_offset_cursors_skip_a_contact_when_an_earlier_one_leaves(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    emails = set(lsim.seed(LIST, 30))
    lsim.faults.offset_cursors = True
    seen, gone = shifted_scan(lsim, api)
    assert len(seen) == len(set(seen)) == 29
    (missed,) = emails - set(seen)  # still subscribed, never served
    assert missed != gone
    assert missed.lower() in lsim.truth(LIST)


def test_default_cursors_serve_everyone_still_subscribed(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    emails = set(lsim.seed(LIST, 30))
    seen, _ = shifted_scan(lsim, api)
    assert set(seen) == emails


def test_offset_cursor_pages_follow_their_own_kind(
    lsim: ListrakSimulator, api: httpx.Client
) -> None:
    lsim.seed(LIST, 25)
    lsim.faults.offset_cursors = True
    cursor = page(api, count=10)["nextPageCursor"]
    lsim.faults.offset_cursors = False  # a scan under way keeps paging by offset
    assert len(page(api, cursor, count=10)["data"]) == 10
    assert len(scan(api, count=10)) == 25


# --- hostile raw values ------------------------------------------------------------------


HOSTILE = [
    {"subscriptionState": "Pending"},
    {"subscriptionState": ["Subscribed"]},
    {"subscribeDate": "2099-01-01T00:00:00"},
    {"segmentationFieldValues": [{"segmentationFieldId": "seventy-seven", "value": "x"}]},
    {"emailAddress": "nul\x00@example.com"},
    {"segmentationFieldValues": [{"segmentationFieldId": TEXT_FIELD, "value": "a\x00b"}]},
]


@pytest.mark.parametrize("values", HOSTILE)
def test_override_serves_hostile_values_in_the_subscribed_scan(
    lsim: ListrakSimulator, api: httpx.Client, values: dict[str, object]
) -> None:
    lsim.subscribe(LIST, "ok@example.com")
    lsim.subscribe(LIST, "odd@example.com", {TEXT_FIELD: "real"})
    lsim.override(LIST, "odd@example.com", values)
    served = {c["emailKey"]: c for c in scan(api)}
    assert len(served) == 2
    (odd,) = [c for c in served.values() if c["emailAddress"] != "ok@example.com"]
    assert {k: odd[k] for k in values} == values
    one = api.get(f"/List/{LIST}/Contact/odd%40example.com").json()["data"]
    assert one == odd
    lsim.clear_override(LIST, "odd@example.com")
    assert all(c["subscriptionState"] == "Subscribed" for c in scan(api))


def test_override_needs_json_values_and_a_contact(lsim: ListrakSimulator) -> None:
    lsim.subscribe(LIST, "a@example.com")
    with pytest.raises(TypeError):
        lsim.override(LIST, "a@example.com", {"subscribeDate": object()})
    with pytest.raises(KeyError):
        lsim.override(LIST, "nobody@example.com", {"subscriptionState": "Pending"})


def test_real_nul_bytes_are_served_escaped(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.subscribe(LIST, "a\x00b@example.com", {TEXT_FIELD: "x\x00y"})
    (contact,) = scan(api, segmentationFieldIds=str(TEXT_FIELD))
    assert contact["emailAddress"] == "a\x00b@example.com"
    assert contact["segmentationFieldValues"][0]["value"] == "x\x00y"


# --- endless empty pages -----------------------------------------------------------------


def test_empty_pages_with_fresh_cursors_forever(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.seed(LIST, 30)
    lsim.faults.empty_after_page = 1
    first = page(api, count=10)
    assert len(first["data"]) == 10
    cursors = [first["nextPageCursor"]]
    for _ in range(50):
        body = page(api, cursors[-1], count=10)
        assert body["data"] == []
        cursors.append(body["nextPageCursor"])
    assert len(set(cursors)) == len(cursors)
    lsim.faults.reset()
    assert len(page(api, cursors[-1], count=10)["data"]) == 10  # the cursor still works


# --- profile fields and their data types -------------------------------------------------


def test_field_groups_return_data_types(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.add_field(LIST, 901, "Numeric")
    (group,) = api.get(f"/List/{LIST}/SegmentationFieldGroup").json()["data"]
    gid = group["segmentationFieldGroupId"]
    fields = api.get(f"/List/{LIST}/SegmentationFieldGroup/{gid}/SegmentationField").json()
    by_id = {f["segmentationFieldId"]: f for f in fields["data"]}
    assert {i: f["dataType"] for i, f in by_id.items()} == {
        TEXT_FIELD: "Text",
        BOX: "CheckBox",
        901: "Numeric",
    }
    assert by_id[BOX]["segmentationFieldName"] == "Audience: first time shopper"
    assert by_id[901]["segmentationFieldName"] == "Field 901"
    with pytest.raises(ValueError, match="dataType"):
        lsim.add_field(LIST, 902, "Checkbox")

"""The Listrak client: pure policy units, then the client against the simulator over loopback.

httpx.MockTransport appears only where the simulator cannot produce the case (a repeated
cursor, exact Retry-After dates) or where a unit test checks policy in isolation.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import pytest

from listrak_source.errors import (
    ConfigError,
    ListrakAuthError,
    ListrakError,
    ListrakProtocolError,
    ListrakUnavailableError,
    StopRequested,
    UnknownListError,
)
from listrak_source.listrak import InvalidSettingError, ListrakClient, stoppable_sleep
from listrak_source.listrak.auth import renewal_margin
from listrak_source.listrak.pacing import Pacer
from listrak_source.listrak.retry import (
    Backoff,
    describe,
    parse_retry_after,
    retry_after_delay,
)
from listrak_source.records import Contact, Reject
from listrak_source.simulator import ListrakSimulator

from .fixtures import (
    API,
    AUTH,
    CLIENT_SECRET,
    FakeTime,
    envelope,
    make_client,
    token_response,
)

Handler = Callable[[httpx.Request], httpx.Response]


# --- retry policy -------------------------------------------------------------------------


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    top = Backoff(base=0.5, maximum=30.0, random=lambda: 1.0)
    assert [top.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert Backoff(base=0.5, maximum=30.0, random=lambda: 0.0).delay(5) == 0.0
    assert Backoff(base=0.5, maximum=30.0, random=lambda: 0.25).delay(3) == 0.5
    assert top.delay(10_000) == 30.0  # no overflow after very many attempts


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now)
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    for junk in (None, "", "soon", "nan"):
        assert parse_retry_after(junk) is None


def test_retry_after_is_capped_and_measured_against_the_servers_date() -> None:
    assert retry_after_delay("100000", date_header=None, cap=300.0) == 300.0
    assert retry_after_delay("inf", date_header=None, cap=300.0) == 300.0
    delay = retry_after_delay(
        "Wed, 01 May 2024 12:00:20 GMT", date_header="Wed, 01 May 2024 12:00:00 GMT", cap=300.0
    )
    assert delay == 20.0


def test_pacer_spaces_request_starts_without_real_sleeping() -> None:
    fake = FakeTime()
    pacer = Pacer(0.5, clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):
        pacer.wait()
    assert fake.sleeps == [0.5, 0.5, 0.5]
    fake.advance(10)
    pacer.wait()
    assert fake.sleeps == [0.5, 0.5, 0.5]  # idle time is not paid back as a burst


def test_renewal_margin_is_ten_percent_capped_at_a_minute() -> None:
    assert renewal_margin(100) == 10
    assert renewal_margin(3599) == 60
    assert renewal_margin(900) == 60


# --- the auth flow and error mapping through a transport seam ------------------------------


class Script:
    """A MockTransport handler that records requests and answers from a per-URL script."""

    def __init__(self, api: Handler, token: Handler | None = None) -> None:
        self.api, self.token = api, token or (lambda _: token_response())
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.token(request) if request.url.host.startswith("auth.") else self.api(request)

    @property
    def token_count(self) -> int:
        return sum(r.url.host.startswith("auth.") for r in self.requests)


def _ok_lists(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"status": 200, "data": [{"listId": 1, "listName": "A"}]})


def test_token_is_form_posted_cached_and_sent_as_bearer() -> None:
    script = Script(_ok_lists)
    with make_client(transport=httpx.MockTransport(script)) as client:
        client.get_lists()
        client.get_lists()
    token_request, first, second = script.requests
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["sim-client"],
        "client_secret": [CLIENT_SECRET],
    }
    assert first.headers["Authorization"] == second.headers["Authorization"] == "Bearer tok-1"
    assert client.stats.token_fetches == 1
    assert client.stats.requests == 3


def test_token_is_renewed_before_it_expires() -> None:
    fake = FakeTime()
    tokens = iter(["tok-1", "tok-2"])
    script = Script(_ok_lists, lambda _: token_response(next(tokens), expires_in=100))
    with make_client(time=fake, transport=httpx.MockTransport(script)) as client:
        client.get_lists()
        fake.advance(89.9)  # margin is 10 s of the 100 s lifetime
        client.get_lists()
        assert script.token_count == 1
        fake.advance(0.1)
        client.get_lists()
    assert script.token_count == 2
    assert script.requests[-1].headers["Authorization"] == "Bearer tok-2"


def test_a_401_renews_once_and_a_second_401_is_a_configuration_error() -> None:
    answers = iter([envelope(401, "ERROR_UNAUTHORIZED"), _ok_lists(httpx.Request("GET", API))])
    script = Script(lambda _: next(answers))
    with make_client(transport=httpx.MockTransport(script)) as client:
        assert client.get_lists()[0]["listId"] == 1
        assert client.stats.token_fetches == 2

    script = Script(lambda _: envelope(401, "ERROR_UNAUTHORIZED"))
    with (
        make_client(transport=httpx.MockTransport(script)) as client,
        pytest.raises(ListrakAuthError) as caught,
    ):
        client.get_lists()
    assert caught.value.status == 401
    assert caught.value.code == "ERROR_UNAUTHORIZED"
    message = str(caught.value)
    for hint in ("paused", "List, Contact and Segmentation", "allowlist", "GET /email/v1/List"):
        assert hint in message
    assert script.token_count == 2  # renewed exactly once, never looped


def test_invalid_credentials_name_the_auth_url_and_hide_the_secret() -> None:
    script = Script(_ok_lists, lambda _: httpx.Response(400, json={"error": "Invalid Credentials"}))
    client = make_client(transport=httpx.MockTransport(script))
    with pytest.raises(ListrakAuthError) as caught:
        client.check_credentials()
    assert str(caught.value) == (
        f"Listrak refused the client id/secret (Invalid Credentials) at {AUTH}"
    )
    assert caught.value.exit_code == 2
    assert script.token_count == 1  # refused credentials are never retried
    for text in (str(caught.value), repr(caught.value), repr(client)):
        assert CLIENT_SECRET not in text


def test_a_wrong_auth_url_is_not_reported_as_bad_credentials() -> None:
    script = Script(_ok_lists, lambda _: httpx.Response(404, text="Not Found"))
    with pytest.raises(ListrakAuthError, match="answered 404: check auth_url"):
        make_client(transport=httpx.MockTransport(script)).check_credentials()


def test_token_endpoint_5xx_and_429_are_retried_like_api_calls() -> None:
    answers = iter(
        [
            httpx.Response(503, text="busy"),
            httpx.Response(429, headers={"Retry-After": "3"}),
            token_response(),
        ]
    )
    fake = FakeTime()
    script = Script(_ok_lists, lambda _: next(answers))
    with make_client(time=fake, transport=httpx.MockTransport(script)) as client:
        client.check_credentials()
        client.get_lists()
    assert fake.sleeps == [0.5, 3.0]  # backoff (random=1.0) for the 503, Retry-After for 429
    assert client.stats.retries == 1
    assert client.stats.rate_limited == 1
    assert script.token_count == 3


def test_a_token_without_access_token_is_a_protocol_error() -> None:
    script = Script(_ok_lists, lambda _: httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(ListrakProtocolError, match="no access_token"):
        make_client(transport=httpx.MockTransport(script)).get_lists()


def test_the_secret_and_token_stay_out_of_reprs_and_errors() -> None:
    script = Script(lambda _: envelope(401, "ERROR_UNAUTHORIZED"), lambda _: token_response("T0K"))
    client = make_client(transport=httpx.MockTransport(script))
    with pytest.raises(ListrakAuthError) as caught:
        client.get_lists()
    texts = [str(caught.value), repr(caught.value), repr(client), repr(client._auth)]
    texts.append(repr(script.requests[1].headers))  # httpx masks Authorization in reprs
    for text in texts:
        assert CLIENT_SECRET not in text
        assert "T0K" not in text


def test_other_4xx_carry_status_code_and_message_and_are_not_retried() -> None:
    script = Script(
        lambda _: envelope(400, "ERROR_TOO_MANY_SEGMENTATION_FIELDS", "Too many fields.")
    )
    with pytest.raises(ListrakError) as caught:
        list(make_client(transport=httpx.MockTransport(script)).iter_pages(5, field_ids=[1]))
    assert type(caught.value) is ListrakError
    assert (caught.value.status, caught.value.code) == (400, "ERROR_TOO_MANY_SEGMENTATION_FIELDS")
    assert str(caught.value) == (
        "Listrak answered 400 ERROR_TOO_MANY_SEGMENTATION_FIELDS: Too many fields. "
        "to GET /List/5/Contact"
    )
    assert len(script.requests) == 2  # token + one API call


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"status": 200, "data": {"not": "a list"}}),
        httpx.Response(200, json={"status": 200, "data": [], "nextPageCursor": 7}),
    ],
)
def test_unexpected_page_shapes_are_protocol_errors(answer: httpx.Response) -> None:
    script = Script(lambda _: answer)
    with pytest.raises(ListrakProtocolError):
        list(make_client(transport=httpx.MockTransport(script)).iter_pages(5))


def _paged(cursors: dict[str, str | None]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params["cursor"]
        data = [{"emailAddress": f"{len(cursor)}@example.com", "subscriptionState": "Subscribed"}]
        return httpx.Response(
            200, json={"status": 200, "nextPageCursor": cursors[cursor], "data": data}
        )

    return handler


def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    script = Script(_paged({"Start": "a+b/c==", "a+b/c==": "x", "x": "a+b/c=="}))
    pages = make_client(transport=httpx.MockTransport(script)).iter_pages(5)
    assert next(pages).next_cursor == "a+b/c=="
    assert next(pages).next_cursor == "x"
    with pytest.raises(ListrakProtocolError, match="cursor it had already returned"):
        next(pages)
    # The opaque cursor went back byte for byte, with +, / and = percent-encoded.
    assert b"cursor=a%2Bb%2Fc%3D%3D" in script.requests[2].url.raw_path


def test_a_cursor_of_start_again_is_also_a_repeat() -> None:
    script = Script(_paged({"Start": "Start"}))
    with pytest.raises(ListrakProtocolError):
        list(make_client(transport=httpx.MockTransport(script)).iter_pages(5))


def test_an_empty_cursor_ends_the_scan() -> None:
    script = Script(_paged({"Start": "next", "next": ""}))
    pages = list(make_client(transport=httpx.MockTransport(script)).iter_pages(5))
    assert [p.next_cursor for p in pages] == ["next", None]


def test_retry_after_as_an_http_date_uses_the_responses_own_date() -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                headers={
                    "Date": "Wed, 01 May 2024 12:00:00 GMT",
                    "Retry-After": "Wed, 01 May 2024 12:00:42 GMT",
                },
            ),
            _ok_lists(httpx.Request("GET", API)),
        ]
    )
    fake = FakeTime()
    with make_client(
        time=fake, transport=httpx.MockTransport(Script(lambda _: next(answers)))
    ) as c:
        c.get_lists()
    assert fake.sleeps == [42.0]


def test_a_permanent_429_eventually_gives_up() -> None:
    fake = FakeTime()
    answer = httpx.Response(429, headers={"Retry-After": "1"})
    script = Script(lambda _: answer)
    client = make_client(time=fake, transport=httpx.MockTransport(script), max_attempts=2)
    with pytest.raises(ListrakUnavailableError, match="still rate limited after 9 tries"):
        client.get_lists()
    assert fake.sleeps == [1.0] * 8
    assert client.stats.rate_limited == 8


# --- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 5001}, "page_size"),
        ({"page_size": 10.0}, "page_size"),
        ({"field_ids": list(range(1, 32))}, "at most 30"),
        ({"field_ids": [0]}, "positive integer"),
        ({"start_date": datetime(2024, 1, 1, tzinfo=UTC)}, "naive"),
    ],
)
def test_bad_scan_arguments_fail_before_any_request(
    kwargs: dict[str, object], message: str
) -> None:
    script = Script(_ok_lists)
    client = make_client(transport=httpx.MockTransport(script))
    with pytest.raises(InvalidSettingError, match=message) as caught:
        client.iter_pages(5, **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ConfigError)
    assert script.requests == []


def test_thirty_field_ids_are_allowed_and_duplicates_dropped() -> None:
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": 200, "nextPageCursor": None, "data": []})

    client = make_client(transport=httpx.MockTransport(Script(api)))
    list(client.iter_pages(5, field_ids=[*range(1, 31), 1]))
    assert seen[0].url.params["segmentationFieldIds"] == ",".join(map(str, range(1, 31)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://x/y"},
        {"auth_url": "not a url"},
        {"max_attempts": 0},
        {"requests_per_second": 0},
        {"timeout": 0},
    ],
)
def test_bad_client_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidSettingError):
        make_client(**kwargs)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_retried_then_unavailable() -> None:
    port = _closed_port()
    fake = FakeTime()
    client = make_client(
        time=fake,
        base_url=f"http://127.0.0.1:{port}/email/v1",
        auth_url=f"http://127.0.0.1:{port}/OAuth2/Token",
        max_attempts=3,
    )
    with pytest.raises(ListrakUnavailableError) as caught:
        client.get_list(1)
    assert str(caught.value).startswith("Listrak GET /List/1 failed 3 times; last: ConnectError")
    assert caught.value.status is None
    assert fake.sleeps == [0.5, 1.0]
    assert client.stats.retries == 2
    assert client.stats.requests == 3  # each attempt died on the token request


# --- the client against the simulator over loopback --------------------------------------

MAIN, FIELD = 1001, 678


@pytest.fixture(scope="module")
def sim() -> Iterator[ListrakSimulator]:
    with ListrakSimulator(client_id="sim-client", client_secret=CLIENT_SECRET) as simulator:
        simulator.add_list(MAIN, "Main", field_ids=[FIELD])
        simulator.seed(MAIN, 12000, field_id=FIELD, seed=1)
        yield simulator


@pytest.fixture
def fresh(sim: ListrakSimulator) -> Iterator[ListrakSimulator]:
    """The shared simulator with no planned faults and an empty request log."""
    sim.faults.reset()
    sim.requests.clear()
    yield sim
    sim.faults.reset()


def _client(sim: ListrakSimulator, fake: FakeTime | None = None, **kwargs: object) -> ListrakClient:
    return make_client(
        base_url=sim.base_url,
        auth_url=sim.auth_url,
        time=fake,
        **kwargs,  # type: ignore[arg-type]
    )


def _statuses(sim: ListrakSimulator) -> list[int]:
    return [record.status for record in sim.requests]


def test_pages_through_12000_contacts_at_5000_a_page(fresh: ListrakSimulator) -> None:
    with _client(fresh) as client:
        pages = list(client.iter_pages(MAIN, field_ids=[FIELD], page_size=5000))
    assert [len(p.contacts) for p in pages] == [5000, 5000, 2000]
    assert [p.rejects for p in pages] == [[], [], []]
    assert pages[-1].next_cursor is None
    seen = {c.key: c for p in pages for c in p.contacts}
    truth = fresh.truth(MAIN, FIELD)
    assert seen.keys() == truth.keys()
    assert {k: c.fields.get(FIELD) for k, c in seen.items()} == {
        k: v["user_id"] for k, v in truth.items()
    }
    assert 0 < sum(FIELD in c.fields for c in seen.values()) < 12000
    queries = [r.query for r in fresh.requests]
    # The simulator's cursors hold "+", "/" and "=": they survived the round trip intact.
    cursors = [q["cursor"] for q in queries]
    assert cursors == ["Start", pages[0].next_cursor, pages[1].next_cursor]
    assert {"+", "/", "="} <= set(queries[1]["cursor"])
    for q in queries:
        assert q["count"] == "5000"
        assert q["segmentationFieldIds"] == str(FIELD)
        assert q["subscriptionState"] == "Subscribed"
    assert all(r.method == "GET" for r in fresh.requests)


def test_without_field_ids_no_fields_come_back(fresh: ListrakSimulator) -> None:
    with _client(fresh) as client:
        first = next(client.iter_pages(MAIN, page_size=100))
    assert len(first.contacts) == 100
    assert all(not c.fields for c in first.contacts)
    assert "segmentationFieldIds" not in fresh.requests[0].query


def test_unsubscribed_scan_with_date_filters(fresh: ListrakSimulator) -> None:
    fresh.add_list(2002, "Unsubs")
    for n in range(5):
        fresh.subscribe(2002, f"person{n}@example.com", None)
    fresh.unsubscribe(2002, "person1@example.com")
    fresh.unsubscribe(2002, "person3@example.com")
    with _client(fresh) as client:
        pages = list(
            client.iter_pages(
                2002,
                subscribed=False,
                start_date=datetime(2000, 1, 2, 3, 4, 5),
                end_date=datetime(2999, 1, 1),
                use_original_subscribe_date=False,
            )
        )
    contacts = [c for p in pages for c in p.contacts]
    assert sorted(c.email for c in contacts) == ["person1@example.com", "person3@example.com"]
    assert not any(c.subscribed for c in contacts)
    assert all(c.unsubscribe_date is not None for c in contacts)
    query = fresh.requests[0].query
    assert query["subscriptionState"] == "Unsubscribed"
    assert query["startDate"] == "2000-01-02T03:04:05"
    assert query["endDate"] == "2999-01-01T00:00:00"
    assert query["useOriginalSubscribeDate"] == "false"


def test_lists_list_and_profile_fields(fresh: ListrakSimulator) -> None:
    with _client(fresh) as client:
        lists = client.get_lists()
        one = client.get_list(MAIN)
        fields = client.get_profile_fields(MAIN)
    assert MAIN in [item["listId"] for item in lists]
    assert one["listName"] == "Main"
    assert fields == {FIELD: f"Field {FIELD}"}


def test_token_is_renewed_before_expiry_by_the_injected_clock(fresh: ListrakSimulator) -> None:
    fake = FakeTime()
    before = fresh.token_requests
    with _client(fresh, fake) as client:
        client.get_list(MAIN)
        fake.advance(3599 - 60 - 1)  # just inside the renewal margin of a 3599 s token
        client.get_list(MAIN)
        assert fresh.token_requests - before == 1
        fake.advance(1)
        client.get_list(MAIN)
    assert fresh.token_requests - before == 2
    assert _statuses(fresh) == [200, 200, 200]  # renewed ahead of time, never via a 401


def test_a_short_lived_token_is_renewed_in_time(fresh: ListrakSimulator) -> None:
    fresh.faults.token_ttl = 100
    fake = FakeTime()
    before = fresh.token_requests
    with _client(fresh, fake) as client:
        for _ in range(3):
            client.get_list(MAIN)
            fake.advance(95)  # past the 90 s renewal point of a 100 s token
    assert fresh.token_requests - before == 3
    assert 401 not in _statuses(fresh)


def test_expired_tokens_are_renewed_on_a_401(fresh: ListrakSimulator) -> None:
    before = fresh.token_requests
    with _client(fresh) as client:
        client.get_list(MAIN)
        fresh.faults.expire_tokens()
        assert client.get_list(MAIN)["listId"] == MAIN
        assert client.stats.token_fetches == 2
    assert _statuses(fresh) == [200, 401, 200]
    assert fresh.token_requests - before == 2


def test_a_second_401_is_a_configuration_error(fresh: ListrakSimulator) -> None:
    fresh.faults.reject_auth = True
    before = fresh.token_requests
    with _client(fresh) as client, pytest.raises(ListrakAuthError) as caught:
        client.get_list(MAIN)
    assert "allowlist" in str(caught.value)
    assert caught.value.exit_code == 2
    assert _statuses(fresh) == [401, 401]
    assert fresh.token_requests - before == 2


def test_invalid_credentials(fresh: ListrakSimulator) -> None:
    with (
        _client(fresh, client_secret="wrong-secret") as client,
        pytest.raises(ListrakAuthError) as caught,
    ):
        client.check_credentials()
    assert str(caught.value) == (
        f"Listrak refused the client id/secret (Invalid Credentials) at {fresh.auth_url}"
    )
    assert "wrong-secret" not in repr(caught.value)


def test_check_credentials_fetches_a_token_and_nothing_else(fresh: ListrakSimulator) -> None:
    before = fresh.token_requests
    with _client(fresh) as client:
        client.check_credentials()
        client.get_list(MAIN)
    assert fresh.token_requests - before == 1
    assert len(fresh.requests) == 1


def test_500s_are_retried_with_backoff_then_succeed(fresh: ListrakSimulator) -> None:
    fresh.faults.fail_next(3, status=500)
    fake = FakeTime()
    with _client(fresh, fake) as client:
        assert client.get_list(MAIN)["listId"] == MAIN
        assert client.stats.retries == 3
    assert _statuses(fresh) == [500, 500, 500, 200]
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_backoff_jitter_comes_from_the_injected_random(fresh: ListrakSimulator) -> None:
    fresh.faults.fail_next(2, status=503)
    fake = FakeTime()
    with _client(fresh, fake, random=lambda: 0.5) as client:
        client.get_list(MAIN)
    assert fake.sleeps == [0.25, 0.5]


def test_500s_forever_make_the_endpoint_unavailable(fresh: ListrakSimulator) -> None:
    fresh.faults.fail_next(50, status=500)
    fake = FakeTime()
    with (
        _client(fresh, fake, max_attempts=4) as client,
        pytest.raises(ListrakUnavailableError) as caught,
    ):
        client.get_list(MAIN)
    assert str(caught.value) == (
        f"Listrak GET /List/{MAIN} failed 4 times; "
        "last: 500 ERROR_UNHANDLED_EXCEPTION: Simulated failure."
    )
    assert (caught.value.status, caught.value.code) == (500, "ERROR_UNHANDLED_EXCEPTION")
    assert len(fresh.requests) == 4
    assert len(fake.sleeps) == 3


def test_a_scan_that_dies_part_way_raises_after_the_good_pages(fresh: ListrakSimulator) -> None:
    fresh.faults.die_after_page = 1
    with _client(fresh, max_attempts=2) as client:
        pages = client.iter_pages(MAIN, page_size=5000)
        assert len(next(pages).contacts) == 5000
        with pytest.raises(ListrakUnavailableError, match="GET /List/1001/Contact failed 2"):
            next(pages)


def test_429_waits_for_retry_after_without_using_attempts(fresh: ListrakSimulator) -> None:
    fresh.faults.rate_limit_next(3, retry_after=7)
    fake = FakeTime()
    with _client(fresh, fake, max_attempts=2) as client:
        assert client.get_list(MAIN)["listId"] == MAIN
        assert (client.stats.rate_limited, client.stats.retries) == (3, 0)
    assert fake.sleeps == [7.0, 7.0, 7.0]
    assert _statuses(fresh) == [429, 429, 429, 200]


def test_retry_after_is_capped(fresh: ListrakSimulator) -> None:
    fresh.faults.rate_limit_next(1, retry_after=3600)
    fake = FakeTime()
    with _client(fresh, fake, max_retry_after=120.0) as client:
        client.get_list(MAIN)
    assert fake.sleeps == [120.0]


def test_token_endpoint_failures_are_retried(fresh: ListrakSimulator) -> None:
    fresh.faults.fail_token_next(2, status=500)
    before = fresh.token_requests
    with _client(fresh) as client:
        client.get_list(MAIN)
        assert client.stats.retries == 2
    assert fresh.token_requests - before == 3


def test_requests_are_paced(fresh: ListrakSimulator) -> None:
    fake = FakeTime()
    with _client(fresh, fake, requests_per_second=2.0) as client:
        for _ in range(3):
            client.get_list(MAIN)
    # The token request starts at once; each API request then waits its 0.5 s turn.
    assert fake.sleeps == [0.5, 0.5, 0.5]
    assert client.stats.requests == 4


def test_unknown_list(fresh: ListrakSimulator) -> None:
    with _client(fresh) as client:
        for call in (
            lambda: client.get_list(999),
            lambda: client.get_profile_fields(999),
            lambda: list(client.iter_pages(999)),
        ):
            with pytest.raises(UnknownListError) as caught:
                call()
            assert str(caught.value).startswith("list 999 does not exist")
            assert "ERROR_UNABLE_TO_LOCATE_RESOURCE" in str(caught.value)
            assert caught.value.exit_code == 2
    assert _statuses(fresh) == [404, 404, 404]  # never retried


def test_malformed_contacts_become_rejects_and_the_rest_parse(fresh: ListrakSimulator) -> None:
    fresh.add_list(3003, "Messy")
    for n in range(3):
        fresh.subscribe(3003, f"ok{n}@example.com", None)
    fresh.add_raw(3003, {"emailAddress": "not-an-address", "subscriptionState": "Subscribed"})
    fresh.add_raw(3003, {"emailAddress": 42})
    fresh.add_raw(3003, {"emailAddress": "x@example.com", "segmentationFieldValues": "oops"})
    with _client(fresh) as client:
        pages = list(client.iter_pages(3003))
    assert len(pages) == 1
    assert sorted(c.email for c in pages[0].contacts) == [f"ok{n}@example.com" for n in range(3)]
    reasons = sorted(r.reason for r in pages[0].rejects)
    assert reasons == [
        "emailAddress is int, expected a string",
        "invalid emailAddress",
        "segmentationFieldValues is not a list",
    ]


def test_token_lifetime_is_read_liberally() -> None:
    from listrak_source.listrak.auth import _lifetime

    assert _lifetime(3599, "POST /t") == 3599.0
    assert _lifetime("900", "POST /t") == 900.0
    assert _lifetime(None, "POST /t") == 900.0  # absent: assume Listrak's shorter lifetime
    for bad in (0, -5, "soon", True, [1]):
        with pytest.raises(ListrakProtocolError):
            _lifetime(bad, "POST /t")


def test_a_stop_abandons_a_retry_after_wait_and_the_request_behind_it(
    fresh: ListrakSimulator,
) -> None:
    stop = threading.Event()
    stop.set()  # as the first SIGTERM does while the client waits
    fresh.faults.rate_limit_next(1, retry_after=120)
    client = ListrakClient(
        client_id="sim-client",
        client_secret=CLIENT_SECRET,
        base_url=fresh.base_url,
        auth_url=fresh.auth_url,
        # No pacing wait, which a stop would also cut short: at 1,000 a second the page's
        # request, within a millisecond of the token's, waited, and was never made.
        requests_per_second=1e9,
        sleep=stoppable_sleep(stop),
    )
    with client, pytest.raises(StopRequested):
        next(client.iter_pages(MAIN, page_size=10))
    assert _statuses(fresh) == [429], "nothing is asked of Listrak after the stop"


def test_one_contact_whatever_its_state_and_none_when_there_is_no_such_contact(
    fresh: ListrakSimulator,
) -> None:
    fresh.add_list(2003, "One by one", field_ids=[FIELD])
    fresh.subscribe(2003, "Ann+news@Example.com", {FIELD: "crm-1"})
    fresh.subscribe(2003, "left@example.com")
    fresh.unsubscribe(2003, "left@example.com")
    with _client(fresh) as client:
        ann = client.get_contact(2003, "ann+news@example.com", field_ids=[FIELD])
        left = client.get_contact(2003, "left@example.com")
        assert client.get_contact(2003, "nobody@example.com") is None
    assert ann == Contact("Ann+news@Example.com", True, {FIELD: "crm-1"}, ann.subscribe_date)
    assert isinstance(left, Contact) and not left.subscribed


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (lambda sim: sim.faults.fail_next(1, 404, plain=True), "Listrak refused the read: 404"),
        (
            lambda sim: sim.faults.fail_next(1, 400),
            "Listrak refused the read: 400 ERROR_INVALID_PARAMETER",
        ),
        (
            lambda sim: sim.faults.refuse_reads.add("User000001@example.com"),
            "Listrak refused the read: 400 ERROR_UNSAFE_ROUTE",
        ),
    ],
)
def test_a_single_read_listrak_refuses_is_a_reject_about_the_address_asked(
    fresh: ListrakSimulator, plan: Callable[[ListrakSimulator], None], reason: str
) -> None:
    """Only Listrak's own not-found says there is no such contact; a 4xx about the request
    says nothing of the contact, and names it only as the address asked about."""
    plan(fresh)
    with _client(fresh) as client:
        found = client.get_contact(MAIN, "user000001@example.com")
    assert found == Reject(reason=reason, email="user000001@example.com")


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        (lambda sim: setattr(sim.faults, "reject_auth", True), ListrakAuthError),
        (lambda sim: sim.faults.fail_next(2, 503), ListrakUnavailableError),
    ],
)
def test_a_single_read_the_account_or_the_service_fails_is_raised(
    fresh: ListrakSimulator, plan: Callable[[ListrakSimulator], None], error: type[Exception]
) -> None:
    plan(fresh)
    with _client(fresh, max_attempts=2) as client, pytest.raises(error):
        client.get_contact(MAIN, "user000001@example.com")


@pytest.mark.parametrize("quoted", ["ann@example.com", "ann%40example.com"])
def test_listraks_message_is_described_without_the_address_it_quotes(quoted: str) -> None:
    """What a failed request's answer says goes into warnings and run errors."""
    body = {"status": 500, "error": "ERROR_UNHANDLED_EXCEPTION", "message": f"{quoted} failed"}
    described = describe(httpx.Response(500, json=body))
    assert described == "500 ERROR_UNHANDLED_EXCEPTION: <email> failed"


def test_a_failed_single_read_names_the_route_not_the_address(fresh: ListrakSimulator) -> None:
    fresh.faults.fail_next(2, status=500)
    with _client(fresh, max_attempts=2) as client, pytest.raises(ListrakUnavailableError) as caught:
        client.get_contact(MAIN, "user000001@example.com")
    assert "user000001" not in str(caught.value)
    assert "GET /List/1001/Contact/{email}" in str(caught.value)


def test_endless_empty_pages_end_the_scan_as_an_error(fresh: ListrakSimulator) -> None:
    fresh.faults.empty_after_page = 1
    with _client(fresh, max_empty_pages=5) as client:
        pages = client.iter_pages(MAIN, page_size=100)
        assert len(next(pages).contacts) == 100
        with pytest.raises(ListrakProtocolError, match="5 empty pages in a row"):
            list(pages)
    assert len(fresh.requests) == 6


def test_a_scan_longer_than_max_pages_is_an_error(fresh: ListrakSimulator) -> None:
    with _client(fresh, max_pages=3) as client:
        pages = client.iter_pages(MAIN, page_size=1000)
        with pytest.raises(ListrakProtocolError, match="more than 3 pages"):
            list(pages)
        assert len(list(client.iter_pages(MAIN, page_size=5000))) == 3  # 12,000 in 3 is fine


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_never_taken_for_listraks_answer(status: int) -> None:
    # httpx does not follow it; the 3xx itself must not pass for a page or an import.
    moved = httpx.Response(status, json={}, headers={"Location": "https://elsewhere.test/"})
    client = make_client(transport=httpx.MockTransport(Script(lambda _: moved)))
    with pytest.raises(ListrakError) as caught:
        client.post_profile_fields(5, [{"emailAddress": "a@b.c", "segmentationFieldValues": []}])
    assert caught.value.status == status
    with pytest.raises(ListrakError) as caught:
        client.get_list(5)
    assert caught.value.status == status


def test_pages_that_only_repeat_contacts_end_the_scan_as_an_error(
    fresh: ListrakSimulator,
) -> None:
    fresh.faults.repeat_after_page = 1  # page 1's contacts again and again, fresh cursors
    with _client(fresh, max_pages=50) as client:
        pages = client.iter_pages(MAIN, page_size=100)
        assert len(next(pages).contacts) == len(next(pages).contacts) == 100
        with pytest.raises(ListrakProtocolError, match="3 pages in a row held only contacts"):
            list(pages)
    assert len(fresh.requests) == 5


def test_a_page_that_trickles_in_meets_a_deadline_for_the_whole_request(
    fresh: ListrakSimulator,
) -> None:
    fresh.faults.page_trickle = 0.02  # each read comes in time; the whole page never would
    client = _client(fresh, timeout=0.3, max_attempts=2)
    with client, pytest.raises(ListrakUnavailableError, match="ReadTimeout"):
        list(client.iter_pages(MAIN, page_size=1))

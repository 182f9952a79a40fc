"""The floor against the real simulator and sink over loopback, checked as a worker run is."""

from __future__ import annotations

import gzip
from dataclasses import replace

import orjson
import pytest

from bench import floor
from bench.verify import verify
from bench.world import TRAIT, World

from .conftest import SIZE


def _options(world: World, *, scan_only: bool = False, secret: str | None = None) -> floor.Options:
    args = floor.build_parser().parse_args(world.floor_arguments(scan_only=scan_only))
    return floor.Options(
        base_url=args.base_url,
        auth_url=args.auth_url,
        client_id=args.client_id,
        client_secret=secret or args.client_secret,
        list_id=args.list_id,
        field_id=args.field_id,
        sink_url=args.sink,
        write_key=args.write_key,
        scan_only=args.scan_only,
    )


def test_a_full_floor_sends_every_subscriber_exactly_once(world: World) -> None:
    summary = floor.run(_options(world))

    verdict = verify(world.sink.messages, world.expect_everyone(), TRAIT)
    assert verdict.ok, verdict.as_dict()
    assert f"scanned {SIZE}, sent {SIZE} in {world.sink.batches} batches" in summary
    assert world.sim.stats.pages == 3


def test_the_scan_only_floor_reads_every_page_and_sends_nothing(world: World) -> None:
    summary = floor.run(_options(world, scan_only=True))

    assert summary == f"floor: list 1001 - scanned {SIZE}, scan only"
    assert world.sim.stats.contacts == SIZE
    assert world.sink.message_count == 0


def test_main_prints_the_summary_and_exits_0(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.main(world.floor_arguments(scan_only=True)) == 0
    assert capsys.readouterr().out.startswith(f"floor: list 1001 - scanned {SIZE}")


def test_wrong_credentials_fail_in_one_line_without_the_secret(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = world.floor_arguments(scan_only=False)
    arguments[arguments.index("--client-secret") + 1] = "not-the-secret"

    assert floor.main(arguments) == 1
    err = capsys.readouterr().err
    assert err == "floor failed: the token request answered HTTP 400\n"
    assert world.sink.message_count == 0


def test_a_refused_batch_stops_the_run_loudly(world: World) -> None:
    world.sink.faults.fail_next(1, status=503)

    with pytest.raises(floor.FloorError, match=r"^a batch post answered HTTP 503$"):
        floor.run(_options(world))


def test_a_failed_page_stops_the_run_loudly(world: World) -> None:
    world.sim.faults.fail_next(1, status=500)

    with pytest.raises(floor.FloorError, match=r"^a Contact page answered HTTP 500$"):
        floor.run(_options(world))


def _message(size: int) -> floor.Message:
    return {"type": "identify", "anonymousId": "a" * size}


def test_batches_stop_at_2500_events() -> None:
    carry: list[bytes] = []
    full = list(floor.batches([_message(10)] * 6000, carry))

    assert [len(b) for b in full] == [2500, 2500]
    assert len(carry) == 1000


def test_batches_stay_under_500_kb_with_their_envelope() -> None:
    carry: list[bytes] = []
    full = list(floor.batches([_message(900)] * 2000, carry))

    assert sum(map(len, full)) + len(carry) == 2000
    for parts in full:
        body = gzip.decompress(floor.batch_body(parts))
        assert len(body) < floor.MAX_BATCH_BYTES
        assert len(orjson.loads(body)["batch"]) == len(parts)


def test_the_carry_from_one_page_fills_the_next_batch() -> None:
    carry: list[bytes] = []
    assert list(floor.batches([_message(10)] * 2000, carry)) == []

    full = list(floor.batches([_message(10)] * 600, carry))

    assert [len(b) for b in full] == [2500]
    assert len(carry) == 100


def test_the_user_id_is_the_configured_fields_value_when_it_has_one() -> None:
    contact = {
        "emailAddress": "A@example.com",
        "segmentationFieldValues": [
            {"segmentationFieldId": 5, "value": "other"},
            {"segmentationFieldId": 678, "value": "cust-1"},
        ],
    }
    empty = {
        "emailAddress": "b@example.com",
        "segmentationFieldValues": [{"segmentationFieldId": 678, "value": ""}],
    }

    first, second = floor.identifies([contact, empty], 1001, 678)

    assert first["userId"] == "cust-1"
    assert first["anonymousId"] == first["traits"]["email"] == "A@example.com"
    assert first["traits"]["Listrak_list_1001"] is True
    assert "userId" not in second
    assert first["messageId"] != second["messageId"]


def test_an_answer_without_the_expected_fields_is_one_line(world: World) -> None:
    # The sink's stats route answers 200 with JSON that holds no access_token.
    opts = replace(_options(world), auth_url=world.sink.url + "/_sink/stats")

    with pytest.raises(floor.FloorError, match=r"^Listrak answered unexpected JSON: KeyError$"):
        floor.run(opts)

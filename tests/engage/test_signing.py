"""Bearer and signature checks, against bodies and signatures made the way Segment makes them."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess

import pytest

from listrak_source.engage.signing import bearer_matches, first_element, signature_matches

SECRETS = [b"old-token", b"new-token"]
SHARED = b"shared secret \xc3\xa9"


def sign(data: bytes, secret: bytes = SHARED) -> str:
    return hmac.new(secret, data, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer old-token", True),
        ("Bearer new-token", True),  # the second secret of a rotation
        ("bearer new-token", True),  # the scheme is case-insensitive
        ("  Bearer   old-token  ", True),
        ("Bearer wrong", False),
        ("Bearer old-token2", False),
        ("Bearer old-toke", False),
        ("Bearer OLD-TOKEN", False),
        ("Basic old-token", False),
        ("old-token", False),
        ("Bearer", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
        ("Bearer \u20ac", False),
    ],
)
def test_bearer(header: str | None, expected: bool) -> None:
    assert bearer_matches(header, SECRETS) is expected


def test_no_configured_secret_matches_nothing() -> None:
    assert not bearer_matches("Bearer ", [b""])
    assert not bearer_matches("Bearer x", [])


@pytest.mark.parametrize(
    ("body", "element"),
    [
        (b'[{"a":1},{"b":2}]', b'{"a":1}'),
        (b'[{"a":"],}"},{"b":2}]', b'{"a":"],}"}'),
        (b'[{"a":[1,{"c":"\\"]"}]},2]', b'{"a":[1,{"c":"\\"]"}]}'),
        (
            '[{"name":"Zo\u00eb \u2603 \U0001f600"},{}]'.encode(),
            '{"name":"Zo\u00eb \u2603 \U0001f600"}'.encode(),
        ),
        (b'[\n  {"a": 1} ,\n {"b":2}]', b'{"a": 1}'),
        (b"[1,2]", b"1"),
        (b'[{"only":true}]', b'{"only":true}'),
    ],
)
def test_first_element_is_the_exact_bytes_sent(body: bytes, element: bytes) -> None:
    assert first_element(body) == element


@pytest.mark.parametrize(
    "body",
    [b'{"a":1}', b"[]", b"[ ]", b"[", b"[{", b'[{"a":}]', b"\xff[1]", b"[\xff]", b"", b"  ", b"7"],
)
def test_first_element_of_anything_else_is_none(body: bytes) -> None:
    assert first_element(body) is None


def test_a_first_element_nested_too_deep_to_decode_is_still_found() -> None:
    # Segment signs whatever it sends; too deep for a parser is no reason to refuse the batch.
    deep = b'{"a":' * 1100 + b"{}" + b"}" * 1100
    assert first_element(b"[" + deep + b',{"b":2}]') == deep


BATCH = b'[{"type":"track","messageId":"m1"},{"type":"track","messageId":"m2"}]'
FIRST = b'{"type":"track","messageId":"m1"}'


def test_a_batch_signed_over_its_first_element_is_accepted() -> None:
    assert signature_matches(BATCH, sign(FIRST), [SHARED])
    assert signature_matches(BATCH, sign(FIRST).upper(), [SHARED])


def test_either_secret_of_a_rotation_signs() -> None:
    rotated = b"the next shared secret"
    for secret in (SHARED, rotated):
        assert signature_matches(BATCH, sign(FIRST, secret), [SHARED, rotated])
        assert signature_matches(BATCH, sign(BATCH, secret), [SHARED, rotated])
    assert not signature_matches(BATCH, sign(FIRST, b"a third"), [SHARED, rotated])
    assert not signature_matches(BATCH, sign(FIRST), [])


def test_a_batch_signed_over_the_whole_body_is_accepted() -> None:
    assert signature_matches(BATCH, sign(BATCH), [SHARED])


def test_a_single_event_signs_the_whole_body() -> None:
    assert signature_matches(FIRST, sign(FIRST), [SHARED])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        sign(FIRST, b"another secret"),
        sign(b'{"type":"track","messageId":"m2"}'),
        sign(FIRST)[:-1],
        sign(json.dumps(json.loads(FIRST)).encode()),  # re-serialized bytes are not what was sent
        "\u00e9" * 40,
    ],
)
def test_anything_else_is_refused(header: str | None) -> None:
    assert not signature_matches(BATCH, header, [SHARED])


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_a_signature_made_by_node_like_segments_destination_is_accepted() -> None:
    # Segment's destination runs on Node: JSON.stringify the batch for the body, and sign
    # JSON.stringify of its first element with createHmac('sha1', secret), hex digest.
    script = """
    const crypto = require('crypto');
    const events = [
      {type: 'track', traits: {email: 'zo\\u00eb@example.com', n: 1.5e-7, s: 'a\\u2028b'},
       nested: {list: [1, 'two', null], s: '\\u0001 </script>'}},
      {type: 'identify'}];
    const secret = 'shared secret \\u00e9';
    const first = JSON.stringify(events[0]);
    const sig = crypto.createHmac('sha1', secret).update(first, 'utf8').digest('hex');
    process.stdout.write(JSON.stringify({body: JSON.stringify(events), sig}));
    """
    out = subprocess.run(["node", "-e", script], capture_output=True, check=True, timeout=30)
    made = json.loads(out.stdout)
    assert signature_matches(made["body"].encode(), made["sig"], [SHARED])

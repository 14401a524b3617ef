"""The wire codec on hand-made and fuzzed messages."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.server import wire
from streamer.server.wire import Classify, Offer, Ping, Record, Subscribe, WireError


def test_client_messages() -> None:
    assert wire.decode('{"type": "ping"}') == Ping()
    assert wire.decode('{"type": "subscribe", "streams": ["a", "b"]}') == Subscribe(("a", "b"))
    assert wire.decode('{"type": "subscribe", "streams": null}') == Subscribe(None)
    assert wire.decode('{"type": "subscribe"}') == Subscribe(None)
    assert wire.decode('{"type": "offer", "stream": null, "sdp": "v=0"}') == Offer(None, "v=0")
    png = b"\x89PNG fake"
    text = json.dumps(
        {
            "type": "classify",
            "id": "r1",
            "top_k": 3,
            "records": [
                {"image": base64.b64encode(png).decode()},
                {"image": "data:image/png;base64," + base64.b64encode(png).decode()},
                {"image": "***"},
                {"picture": "x"},
            ],
        }
    )
    message = wire.decode(text)
    assert isinstance(message, Classify) and (message.id, message.top_k) == ("r1", 3)
    assert message.records[:2] == (Record(png), Record(png))
    assert message.records[2] == Record(None, "record 2: 'image' is not valid base64")
    assert message.records[3].error == "record 3 needs an 'image' field holding base64 text"


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("{not json", "bad_json", "not JSON"),
        ("[1, 2]", "bad_message", "must be a JSON object, got list"),
        ('{"type": "shout"}', "unknown_type", "unknown message type 'shout'; expected one of"),
        ('{"no": "type"}', "unknown_type", "unknown message type None"),
        ('{"type": "subscribe", "streams": [1]}', "bad_message", "list of stream ids"),
        ('{"type": "classify", "records": []}', "bad_message", "needs a 'id' field"),
        ('{"type": "classify", "id": "a", "records": []}', "bad_message", "1 to 10 images, got 0"),
        ('{"type": "classify", "id": "a", "records": {}}', "bad_message", "field 'records' must be list, got dict"),
        ('{"type": "classify", "id": "a", "records": [{}], "top_k": 0}', "bad_message", "'top_k' must be 1..100"),
        ('{"type": "classify", "id": "a", "records": [{}], "top_k": true}', "bad_message", "must be int, got bool"),
        ('{"type": "offer", "sdp": 5}', "bad_message", "field 'sdp' must be str, got int"),
        ("[" * 100_000, "bad_json", "not JSON"),
    ],
)
def test_bad_messages_say_what_is_wrong(text: str, code: str, message: str) -> None:
    with pytest.raises(WireError, match=message) as info:
        wire.decode(text)
    assert info.value.code == code


def test_too_many_records_keeps_the_request_id() -> None:
    text = json.dumps({"type": "classify", "id": "big", "records": [{"image": ""}] * 11})
    with pytest.raises(WireError) as info:
        wire.decode(text)
    assert json.loads(wire.error(info.value)) == {
        "type": "error",
        "code": "bad_message",
        "message": "'records' must hold 1 to 10 images, got 11",
        "id": "big",
    }


def test_oversized_and_binary() -> None:
    with pytest.raises(WireError, match="over") as info:
        wire.decode(" " * (wire.MAX_MESSAGE_BYTES + 1))
    assert info.value.code == "too_large"
    with pytest.raises(WireError, match="binary messages are not accepted") as info:
        wire.decode(b"\x00\x01")
    assert info.value.code == "binary"
    huge = "A" * (wire.MAX_IMAGE_BYTES * 4 // 3 + 8)
    message = wire.decode(json.dumps({"type": "classify", "id": "x", "records": [{"image": huge}]}))
    assert isinstance(message, Classify) and "over 8 MiB" in (message.records[0].error or "")


def test_encode_round_trips() -> None:
    result = {"stream": "cam", "frame": 3, "classes": [{"name": "cat", "confidence": 0.5}]}
    assert json.loads(wire.encode("result", result=result)) == {"type": "result", "result": result}
    assert wire.encode("pong") == '{"type":"pong"}'
    with pytest.raises(ValueError):
        wire.encode("result", value=float("nan"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), json_values.map(json.dumps)))
def test_fuzz_never_anything_but_a_message_or_a_wire_error(data: str | bytes) -> None:
    _message_or_error(data)


def _message_or_error(data: str | bytes) -> None:
    """Decoding gives a typed message or a WireError with a known code and a sendable answer."""
    try:
        message = wire.decode(data)
    except WireError as exc:
        assert exc.code in {"binary", "too_large", "bad_json", "bad_message", "unknown_type"}
        assert json.loads(wire.error(exc))["type"] == "error"
    else:
        assert isinstance(message, Ping | Subscribe | Classify | Offer)


@settings(max_examples=1500, deadline=None)
@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["ping", "subscribe", "classify", "offer", "x"])},
        optional={
            "id": json_values,
            "records": json_values,
            "streams": json_values,
            "sdp": json_values,
            "top_k": json_values,
        },
    )
)
def test_fuzz_typed_messages_with_random_fields(fields: dict[str, object]) -> None:
    _message_or_error(json.dumps(fields))

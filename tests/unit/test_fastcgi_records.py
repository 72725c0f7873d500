"""FastCGI record framing without sockets."""

from __future__ import annotations

import pytest

from monkey_py_plugins.fastcgi import records


def test_params_and_stdin_round_trip_through_the_reader():
    pairs = [(b"SCRIPT_FILENAME", b"/srv/x.php"), (b"LONG", b"v" * 300)]
    data = records.begin_request(True) + records.params(pairs) + records.stdin(b"x" * 70000) \
        + records.stdin(b"")
    reader = records.RecordReader()
    found = []
    for i in range(0, len(data), 7):        # any split
        found += reader.feed(data[i:i + 7])
    kinds = [kind for kind, _ in found]
    assert kinds == [records.BEGIN_REQUEST, records.PARAMS, records.PARAMS, records.STDIN,
                     records.STDIN, records.STDIN]
    params = found[1][1]
    assert params[:2] == bytes((15, 10)) and params[2:27] == b"SCRIPT_FILENAME/srv/x.php"
    assert params[27:36] == bytes((4,)) + (300 | 0x80000000).to_bytes(4, "big") + b"LONG"
    assert len(found[3][1]) == 65535 and len(found[4][1]) == 70000 - 65535
    assert len(records.record(records.STDOUT, b"abc")) == 16  # padded to 8 bytes


def test_end_request_and_errors():
    content = (0).to_bytes(4, "big") + bytes((records.REQUEST_COMPLETE,)) + b"\0\0\0"
    reader = records.RecordReader()
    [(kind, body)] = reader.feed(records.record(records.END_REQUEST, content))
    assert kind == records.END_REQUEST and records.end_request(body) == (0, 0)
    with pytest.raises(records.ProtocolError):
        records.RecordReader().feed(b"\x02" + b"\0" * 7)
    with pytest.raises(records.ProtocolError):
        records.end_request(b"\0")

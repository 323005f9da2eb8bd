"""bridge/server/worker_messages.py: the server <-> worker pipe's typed messages through the strict JSON codec.

Every message survives a real `multiprocessing` pipe between two processes unchanged; what breaks the contract (an
unknown type, a missing or extra field, a wrong JSON type, a NaN) is refused with an error naming the message.
"""

from __future__ import annotations

import multiprocessing as mp

import pytest

from filmscore.bridge.protocol import EncodingError
from filmscore.bridge.server import worker_messages as wm

EXAMPLES = [
    wm.Run(3, "job-1", {"output": "/o/a.wav", "steps": 10, "guidance": 2.5, "plan": None}, "/o/a.wav"),
    wm.Stop(),
    wm.Ready(4321),
    wm.Progress(3, "denoise", 0.25, "step 5/20"),
    wm.Preview(3, "/o/a.draft.wav", 4, 1.5),
    wm.Done(3, {"output": "/o/a.wav", "lufs": -23.0, "takes": [{"seed": 1}]}),
    wm.Failed(3, "DiskFull", "no space left on the device of /o"),
    wm.Cancelled(3, ""),
]


def _echo(conn) -> None:
    """The child's side: read messages and send each back until Stop."""
    while True:
        msg = wm.recv(conn)
        wm.send(conn, msg)
        if isinstance(msg, wm.Stop):
            return


def test_every_message_crosses_a_real_pipe_unchanged():
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    p = ctx.Process(target=_echo, args=(child,), daemon=True)
    p.start()
    child.close()
    try:
        for msg in [*EXAMPLES[2:], EXAMPLES[0], EXAMPLES[1]]:  # Stop last: the child exits after echoing it
            wm.send(parent, msg)
            assert parent.poll(60), f"no echo of {msg}"
            back = wm.recv(parent)
            assert back == msg and type(back) is type(msg)
    finally:
        p.join(30)
        if p.is_alive():
            p.kill()
    assert p.exitcode == 0


def test_the_encoding_is_tagged_json():
    assert wm.encode(wm.Progress(7, "vocode", 1, "")) == b'{"type":"progress","seq":7,"stage":"vocode","fraction":1,"message":""}'
    back = wm.decode(wm.encode(wm.Progress(7, "vocode", 1, "")))
    assert back.fraction == 1.0 and isinstance(back.fraction, float)  # JSON's one number type read as the field's


@pytest.mark.parametrize("data, names", [
    (b'{"type":"progres","seq":1,"stage":"a","fraction":0.5,"message":""}', "no known type"),
    (b'{"seq":1}', "no known type"),
    (b'[1, 2]', "no known type"),
    (b'{"type":"progress","seq":1,"stage":"a","fraction":0.5}', "Progress has fields"),
    (b'{"type":"progress","seq":1,"stage":"a","fraction":0.5,"message":"","eta":3}', "Progress has fields"),
    (b'{"type":"progress","seq":"1","stage":"a","fraction":0.5,"message":""}', "Progress.seq is a str"),
    (b'{"type":"ready","pid":true}', "Ready.pid is a bool"),
    (b'{"type":"done","seq":1,"result":[]}', "Done.result is a list"),
    (b'{"type":"progress","seq":1,"stage":"a","fraction":NaN,"message":""}', "not a JSON number"),
    (b'\xff\xfe', "not valid UTF-8 JSON"),
])
def test_a_message_that_breaks_the_contract_is_refused_by_name(data, names):
    with pytest.raises(wm.WorkerMessageError, match=names):
        wm.decode(data)


def test_a_nan_is_refused_where_it_is_sent():
    with pytest.raises(EncodingError):
        wm.encode(wm.Progress(1, "denoise", float("nan"), ""))

"""Stems through the bridge: a render request with `stems: true` to a real `filmscore serve` whose bundle is v2
(the tiny seeded one) delivers OUT.lead.wav, OUT.accompaniment.wav and OUT.percussion.wav beside OUT.wav, published
with the cue (no partial file left), listed in the job's result, summing to the mix; a v1 bundle refuses `stems`
before queueing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge_support import bridge_bundle, events_until

from filmscore.bridge.client import BridgeClient, RemoteError
from filmscore.bridge.server.launch import launch_server

pytestmark = pytest.mark.timeout(300)
STEMS = ("lead", "accompaniment", "percussion")


def _dirs(root):
    d = {k: root / k for k in ("state", "media", "out")}
    for p in d.values():
        p.mkdir()
    return d


def test_a_v2_render_job_delivers_its_stems(tmp_path):
    from filmscore.engine.bundle_testing_v2 import make_tiny_bundle_v2

    d = _dirs(tmp_path)
    bundle = make_tiny_bundle_v2(tmp_path / "b2")
    out = d["out"] / "cue.wav"
    with launch_server(d["state"], media_roots=[d["media"]], output_roots=[d["out"]], bundle=bundle) as srv:
        with BridgeClient(srv.info) as c:
            c.subscribe(wait_s=30)
            job = c.render(out, duration_s=3.0, steps=1, seed=2, stems=True)
            evs = events_until(c, job)
            assert evs[-1].msg_type == "job_finished", evs[-1].content
            res = c.result(job)
    listed = res["metadata"]["stems"]
    assert listed == {s: str(d["out"] / f"cue.{s}.wav") for s in STEMS}
    mix, sr = sf.read(str(out))
    total = sum(sf.read(listed[s])[0] for s in STEMS)
    assert mix.shape == (3 * sr, 2) and np.max(np.abs(total - mix)) <= 4 * 2.0 ** -23
    assert not [p.name for p in d["out"].iterdir() if ".partial" in p.name]


def test_stems_with_a_v1_bundle_are_refused_before_queueing(tmp_path):
    d = _dirs(tmp_path)
    bundle = bridge_bundle(tmp_path / "b1")
    with launch_server(d["state"], media_roots=[d["media"]], output_roots=[d["out"]], bundle=bundle) as srv:
        with BridgeClient(srv.info) as c:
            with pytest.raises(RemoteError, match="v1 bundle"):
                c.render(d["out"] / "x.wav", duration_s=2.0, steps=1, stems=True)
    assert list(d["out"].iterdir()) == []

"""bridge/connection.py: the connection file is written 0600, atomically, and checked when read."""

from __future__ import annotations

import os
import stat

import pytest

from filmscore.bridge import connection as C


def test_write_read_round_trip_owner_only(tmp_path):
    info = C.new_connection_info()
    info["request_port"], info["event_port"] = 5555, 5556
    path = C.write_connection_file(tmp_path / "sub" / "bridge.json", info)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert C.read_connection_file(path) == info
    assert len(C.key_bytes(info)) == 32
    assert C.endpoint(info, "request_port") == "tcp://127.0.0.1:5555"
    assert [p.name for p in path.parent.iterdir()] == ["bridge.json"]  # no temp file left behind


def test_keys_are_fresh():
    assert C.new_connection_info()["key"] != C.new_connection_info()["key"]


def test_refuses_files_others_can_read(tmp_path):
    path = C.write_connection_file(tmp_path / "c.json", C.new_connection_info())
    os.chmod(path, 0o644)
    with pytest.raises(C.ConnectionFileError, match="0600"):
        C.read_connection_file(path)


@pytest.mark.parametrize("edit,why", [
    (lambda d: d.pop("key"), "lacks key"),
    (lambda d: d.update(signature_scheme="hmac-md5"), "signature scheme"),
    (lambda d: d.update(key="zz"), "hex"),
    (lambda d: d.update(key="00ff"), "at least 16 bytes"),
])
def test_bad_files_name_the_problem(tmp_path, edit, why):
    info = C.new_connection_info()
    edit(info)
    path = C.write_connection_file(tmp_path / "c.json", info)
    with pytest.raises(C.ConnectionFileError, match=why):
        C.read_connection_file(path)


def test_missing_and_garbage(tmp_path):
    with pytest.raises(C.ConnectionFileError, match="cannot read"):
        C.read_connection_file(tmp_path / "nope.json")
    p = tmp_path / "g.json"
    p.write_text("{not json")
    os.chmod(p, 0o600)
    with pytest.raises(C.ConnectionFileError, match="not JSON"):
        C.read_connection_file(p)


def test_find_newest(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(C.ConnectionFileError, match="no running bridge"):
        C.find_connection_file()
    a = C.write_connection_file(C.runtime_dir() / "bridge-1.json", C.new_connection_info())
    b = C.write_connection_file(C.runtime_dir() / "bridge-2.json", C.new_connection_info())
    os.utime(a, (1, 1))
    assert C.find_connection_file() == b

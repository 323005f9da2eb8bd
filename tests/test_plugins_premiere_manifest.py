"""plugin_manifests/premiere/manifest.json: the rules Premiere's UXP loader enforces, and the gateway it names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

PANEL = Path(__file__).resolve().parent.parent / "plugin_manifests" / "premiere"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((PANEL / "manifest.json").read_text(encoding="utf-8"))


def _config_constant(name: str) -> str:
    m = re.search(rf"^export const {name} = (.+);$", (PANEL / "src" / "config.js").read_text(), re.M)
    assert m, f"config.js defines no {name}"
    return m.group(1).strip().strip('"')


def test_manifest_version_id_and_host(manifest):
    assert manifest["manifestVersion"] == 5  # requiredPermissions (network.domains) exist from v5 on
    assert re.fullmatch(r"[A-Za-z0-9._-]+", manifest["id"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])  # UXP wants x.y.z
    hosts = manifest["host"] if isinstance(manifest["host"], list) else [manifest["host"]]
    assert [h["app"] for h in hosts] == ["premierepro"]
    # The Premiere UXP API left beta with Premiere Pro 25.6; SequenceEditor and TickTime.ticksNumber need >= 25.0.
    major, minor, _ = (int(x) for x in hosts[0]["minVersion"].split("."))
    assert (major, minor) >= (25, 6)


def test_entry_points_exist(manifest):
    main = PANEL / manifest["main"]
    assert main.is_file()
    scripts = re.findall(r'<script src="([^"]+)"', main.read_text())
    assert scripts and all((PANEL / s).is_file() for s in scripts)
    entries = manifest["entrypoints"]
    assert [e["type"] for e in entries] == ["panel"]
    ids = {e["id"] for e in entries}
    # Each manifest entry point is set up by main.js under the same id, and has a default label.
    setup = (PANEL / "src" / "main.js").read_text()
    for e in entries:
        assert re.search(rf"\b{e['id']}: \{{", setup), f"main.js does not set up entry point {e['id']}"
        assert e["label"]["default"]
        assert e["minimumSize"]["width"] <= e["preferredDockedSize"]["width"] <= e["maximumSize"]["width"]
    assert len(ids) == len(entries)


def test_network_domains_name_the_gateway_exactly(manifest):
    perms = manifest["requiredPermissions"]
    # The panel connects to ws://GATEWAY_HOST:GATEWAY_PORT (config.js); UXP lets it only if the manifest names it.
    expected = f"ws://{_config_constant('GATEWAY_HOST')}:{_config_constant('GATEWAY_PORT')}"
    assert _config_constant("GATEWAY_URL") == "`ws://${GATEWAY_HOST}:${GATEWAY_PORT}`"
    assert perms["network"]["domains"] == [expected]
    url = perms["network"]["domains"][0]
    m = re.fullmatch(r"ws://(127\.0\.0\.1):(\d+)", url)
    assert m, f"{url} is not a loopback ws:// origin with a port"
    # `filmscore serve --ws HOST:PORT` accepts exactly that address, and the gateway binds loopback without
    # --allow-remote.
    from filmscore.bridge.cli import build_parser

    args = build_parser().parse_args(["serve", "--ws", f"{m.group(1)}:{m.group(2)}"])
    assert args.ws == ("127.0.0.1", int(m.group(2)))
    # No wildcard anywhere: the panel reaches the bridge and nothing else.
    assert all("*" not in d for d in perms["network"]["domains"])


def test_only_the_adapter_touches_premiere():
    """The browser-tested modules never reach for the host: `require(` appears only in the adapter and main.js."""
    for p in (PANEL / "src").glob("*.js"):
        uses_host = "require(" in p.read_text()
        assert uses_host == (p.name in ("premiere_adapter.js", "main.js")), p.name

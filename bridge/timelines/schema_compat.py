"""Read OTIO JSON written by a newer OpenTimelineIO: the `Marker.3` -> `Marker.2` downgrade pre-pass.

OpenTimelineIO's main branch writes `Marker.3`, whose `color` is a `Color.1` object (r, g, b, a, name); the newest
release on PyPI (0.18.1) knows only `Marker.2`, whose `color` is one of the names in `otio.schema.MarkerColor`, and
refuses the whole file ("unsupported schema version"). Resolve and Premiere read Marker.2 today, so we downgrade on
read and always write Marker.2:

- `OTIO_SCHEMA: "Marker.3"` becomes `"Marker.2"`;
- the colour object becomes its `name` when that is a MarkerColor name, else the MarkerColor nearest to its RGB;
- every other field is kept (Marker.2 has `name`, `metadata`, `marked_range`, `color`, `comment`).

Any other schema newer than this OpenTimelineIO reads is refused with a `TimelineSchemaError` naming the object,
the version found and the version supported (OTIO itself only says "near line N").
"""

from __future__ import annotations

import json
from typing import Any

import opentimelineio as otio

from .errors import TimelineError, TimelineSchemaError

# RGB of Marker.2's colour names (as OTIO main's Color constants define them), for colours given without a name.
MARKER_COLOR_RGB: dict[str, tuple[float, float, float]] = {
    "PINK": (1.0, 0.75, 0.8),
    "RED": (1.0, 0.0, 0.0),
    "ORANGE": (1.0, 0.5, 0.0),
    "YELLOW": (1.0, 1.0, 0.0),
    "GREEN": (0.0, 1.0, 0.0),
    "CYAN": (0.0, 1.0, 1.0),
    "BLUE": (0.0, 0.0, 1.0),
    "PURPLE": (0.5, 0.0, 0.5),
    "MAGENTA": (1.0, 0.0, 1.0),
    "BLACK": (0.0, 0.0, 0.0),
    "WHITE": (1.0, 1.0, 1.0),
}


def marker_color_name(color: Any) -> str:
    """A Marker.3 colour (a `Color.1` dict, or already a name) as a Marker.2 colour name."""
    if isinstance(color, str):
        return color.upper() if color.upper() in MARKER_COLOR_RGB else color
    if not isinstance(color, dict):
        return "RED"  # OTIO's default marker colour
    name = str(color.get("name") or "").upper()
    if name in MARKER_COLOR_RGB:
        return name
    rgb = tuple(float(color.get(k, 0.0)) for k in ("r", "g", "b"))
    return min(MARKER_COLOR_RGB, key=lambda n: sum((a - b) ** 2 for a, b in zip(MARKER_COLOR_RGB[n], rgb)))


def downgrade_markers(tree: Any) -> int:
    """Rewrite every `Marker.3` in a parsed OTIO JSON tree as `Marker.2`, in place; return how many."""
    n = 0
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("OTIO_SCHEMA") == "Marker.3":
                node["OTIO_SCHEMA"] = "Marker.2"
                node["color"] = marker_color_name(node.get("color"))
                n += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return n


def check_schema_versions(tree: Any, source: str) -> None:
    """Raise `TimelineSchemaError` for the first object whose schema version is newer than this OTIO reads."""
    known = otio.core.type_version_map()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            schema = node.get("OTIO_SCHEMA")
            if isinstance(schema, str) and "." in schema:
                name, _, version = schema.rpartition(".")
                if name in known and version.isdigit() and int(version) > known[name]:
                    what = f" {node['name']!r}" if isinstance(node.get("name"), str) and node["name"] else ""
                    raise TimelineSchemaError(
                        f"{source}: {name}{what} uses schema {schema}, newer than OpenTimelineIO "
                        f"{otio.__version__} reads ({name}.{known[name]}); re-export with an older schema")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def read_otio_json(text: str, source: str) -> tuple[otio.core.SerializableObject, int]:
    """Parse OTIO JSON text through the downgrade pre-pass. Returns (object, number of markers downgraded)."""
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as e:
        raise TimelineError(f"{source}: not valid OTIO JSON ({e.msg} at line {e.lineno})") from e
    n = downgrade_markers(tree)
    check_schema_versions(tree, source)
    try:
        obj = otio.adapters.read_from_string(json.dumps(tree), adapter_name="otio_json")
    except Exception as e:  # OTIO raises its own exception types and plain ValueError from the C++ core
        raise TimelineError(f"{source}: OpenTimelineIO refused it ({e})") from e
    return obj, n

"""Convert the panel's ES modules (src/) to the CommonJS files UXP loads (uxp/).

UXP panels load scripts with CommonJS `require`, browsers load ES modules: the sources are ES modules written in a
small, checked subset, and this script rewrites that subset line by line (no bundler, no Node toolchain):

    import { a, b } from "./x.js";          ->  const { a, b } = require("./x.js");
    export [async] function f / class C / const X   ->  the same without `export`, and f, C, X in module.exports

Any other `import`/`export` form is refused with the file and line. `python build_uxp.py` writes uxp/;
`python build_uxp.py --check` exits 1 when uxp/ is not what src/ gives (tests/test_plugins_premiere.py runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC, OUT = HERE / "src", HERE / "uxp"

_IMPORT = re.compile(r'^import \{([\w\s,]+)\} from "(\./[\w.-]+\.js)";\s*$')
_EXPORT = re.compile(r"^export ((?:async )?function\*? (\w+)|class (\w+)|const (\w+))")


class BuildError(Exception):
    """A source line in an import/export form this converter does not handle."""


def to_commonjs(text: str, name: str) -> str:
    out = [f"// Generated from src/{name} by build_uxp.py: edit the source, then run `python build_uxp.py`."]
    exported: list[str] = []
    for i, line in enumerate(text.splitlines(), 1):
        m = _IMPORT.match(line)
        if m:
            names = ", ".join(n.strip() for n in m.group(1).split(",") if n.strip())
            out.append(f'const {{ {names} }} = require("{m.group(2)}");')
            continue
        m = _EXPORT.match(line)
        if m:
            exported.append(m.group(2) or m.group(3) or m.group(4))
            out.append(line[len("export "):])
            continue
        if re.match(r"^\s*(import|export)\b", line):
            raise BuildError(f"src/{name}:{i}: unsupported module syntax: {line.strip()[:80]}")
        out.append(line)
    if exported:
        out.append(f"module.exports = {{ {', '.join(exported)} }};")
    return "\n".join(out) + "\n"


def build() -> dict[str, str]:
    """{file name: CommonJS text} for every module in src/."""
    return {p.name: to_commonjs(p.read_text(encoding="utf-8"), p.name) for p in sorted(SRC.glob("*.js"))}


def main(argv: list[str]) -> int:
    files = build()
    if "--check" in argv:
        stale = [n for n, t in files.items() if not (OUT / n).is_file() or (OUT / n).read_text(encoding="utf-8") != t]
        stale += [p.name for p in OUT.glob("*.js") if p.name not in files]
        if stale:
            print(f"uxp/ is out of date ({', '.join(sorted(stale))}): run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for p in OUT.glob("*.js"):
        if p.name not in files:
            p.unlink()
    for n, t in files.items():
        (OUT / n).write_text(t, encoding="utf-8")
    print(f"wrote {len(files)} files to {OUT}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BuildError as e:
        print(f"build_uxp: error: {e}", file=sys.stderr)
        sys.exit(2)

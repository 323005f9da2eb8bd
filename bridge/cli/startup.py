"""How long a command took to reach its work: the process's age, for `render --json`'s `startup_s`.

The start-up a user waits through before the first stage (interpreter, imports, argument parsing, the request's
checks) is not inside any stage's timing, so it is measured from the process's own start time as the kernel records
it, not from a clock this module starts (which would miss the interpreter and every import before it).
"""

from __future__ import annotations

import os


def process_age_s() -> float | None:
    """Seconds since this process started, from /proc (10 ms resolution); None where /proc is not Linux's."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        with open("/proc/uptime", "rb") as f:
            uptime_s = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # field 22 (starttime, in clock ticks since boot) counts from after the command name, which may hold spaces
    fields = stat[stat.rindex(b")") + 2:].split()
    try:
        started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None
    return max(0.0, uptime_s - started_s)

"""The report of a benchmark timed in rounds: per variant the median speed over the rounds and
the median of its per-round ratio to the peer (the machine is shared: ratios taken within one
round are steadier than speeds), printed as a table and written as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(speeds: dict[str, list[float]], peer: str, unit: str, header: str, out: Path,
           record: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``speeds``: per variant, one speed (``unit``, higher is faster) per round, the peer's among
    them. Prints ``header`` and the table; writes ``record`` plus the speeds and the summary to ``out``."""
    width = max(map(len, speeds)) + 2
    print(header)
    print(f"  {'':<{width}}{unit:>9}{'ratio to ' + peer:>{len(peer) + 12}}")
    summary = {}
    for name, values in speeds.items():
        ratios = sorted(v / p for v, p in zip(values, speeds[peer]))
        summary[name] = {unit: sorted(values)[len(values) // 2], "ratio": ratios[len(ratios) // 2]}
        print(f"  {name:<{width}}{summary[name][unit]:>9.2f}{summary[name]['ratio']:>{len(peer) + 12}.2f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**record, unit: speeds, "summary": summary}, indent=2))
    return summary

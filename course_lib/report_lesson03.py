"""README renderer for lesson 03's results (``results/lesson03.json``): one markdown table.

Introduced in lesson 03; ``course_lib.report`` registers :func:`lesson03` beside the other lessons.
"""
from __future__ import annotations

import statistics

#: Table order (the notebook's ``hidden.METHODS``).
ORDER = ["student alone", "logit KD", "hint+KD", "AT+KD", "cosine+KD", "RKD+KD"]


def _pct(values) -> str:
    """``mean ± std`` in percent over seeds (std with n-1), or the single value."""
    values = [100 * float(v) for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def lesson03(r: dict) -> str:
    """Markdown for lesson 03: test and shifted-test accuracy per method, parameters and CPU latency."""
    regime, teacher = r["regime"], r["teacher"]
    seeds = len(r["seeds"])
    batch = r.get("latency_batch_size", 256)
    lines = [
        f"**Lesson 03, hidden-state distillation** (`results/lesson03.json`; {regime['description']}; "
        f"test accuracy in %, mean ± std over {seeds} seeds; {regime['epochs']} epochs per student, "
        f"T = {regime['temperature']:g}, alpha = {regime['alpha']:g}, hidden-state weights chosen on validation; "
        f"notebook run time {r['seconds'] / 60:.1f} min on {r.get('device_name', '?')}):",
        "",
        f"| model | test accuracy | shifted test accuracy (≤ {regime['max_shift_px']} px) | parameters | "
        f"CPU ms / batch of {batch} |",
        "|---|---:|---:|---:|---:|",
        f"| teacher (CNN) | {100 * teacher['test_accuracy']:.2f} | {100 * teacher['shifted_test_accuracy']:.2f} | "
        f"{teacher['params']:,} | {teacher['latency_ms_per_batch']:.2f} |",
    ]
    for method in ORDER:
        m = r["methods"].get(method)
        if m is None:
            continue
        beta = f" (beta = {m['beta']:g})" if m.get("beta") is not None else ""
        lines.append(f"| student: {method}{beta} | {_pct(m['test_accuracy'])} | {_pct(m['shifted_test_accuracy'])} | "
                     f"{m['params']:,} | {m['latency_ms_per_batch']:.2f} |")
    return "\n".join(lines)

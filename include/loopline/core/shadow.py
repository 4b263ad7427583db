"""Promotion on live evidence (pure rules): after its shadow period, does a challenger that
passed the offline gate become champion?

A challenger is promoted only when it has been compared with the champion on at least
``shadow.required_days`` labelled days, and over the comparison window the lower bound of the
confidence interval of its gain (the primary metric, paired on the same rows) is above
``shadow.margin``: better, and by more than the noise. Otherwise it is kept as challenger, once,
with its figures; it is not re-tested day after day (repeated looks would promote by chance).
"""

from __future__ import annotations

import math

from loopline.core.spec import Shadow

# What a comparison concludes about the challenger.
MONITOR, WAITING, PROMOTE, KEEP, DECIDED = "monitor", "waiting", "promote", "keep", "decided"


def verdict(
    settings: Shadow, *, eligible: bool, decided: bool, labelled_days: int, window: dict
) -> tuple[str, str]:
    """(verdict, reason). ``eligible``: the challenger passed the offline gate (or was put in
    shadow by hand) and waits for live evidence; ``decided``: it was already kept."""
    low, difference = window.get("low", math.nan), window.get("difference", math.nan)
    figures = (
        f"live gain {difference:+.4f} over {window.get('rows', 0)} labelled rows "
        f"(interval {low:+.4f} .. {window.get('high', math.nan):+.4f}), "
        f"{labelled_days} labelled day(s)"
    )
    if settings.required_days == 0 or not eligible:
        return MONITOR, f"compared, not deciding: {figures}"
    if decided:
        return DECIDED, f"kept earlier; {figures}"
    if labelled_days < settings.required_days:
        return (
            WAITING,
            f"{figures}; needs {settings.required_days} labelled days (shadow.required_days)",
        )
    if low == low and low > settings.margin:
        return PROMOTE, (
            f"beats the champion on live data: {figures}; lower bound above the margin "
            f"{settings.margin} (shadow.margin)"
        )
    return KEEP, (
        f"not better than the champion beyond the noise on live data: {figures}; needs the "
        f"lower bound above {settings.margin} (shadow.margin)"
    )

"""``serving.traffic`` checked at plan time (``recipe.plan.check_settings``): the profile's name, rates and hours,
and its CSV read (``CSV_FORMAT``); RecipeError with one line naming the key. ``decide.traffic`` turns the profile
into the autoscaled schedule."""

import math
from typing import List, Tuple

from optimizer.errors import RecipeError

DAY_S = 86400
PROFILES = ("none", "constant", "diurnal", "csv")
CSV_FORMAT = ("rows 'time,requests_per_s', time as seconds since midnight or HH:MM[:SS] within the day, "
              "an optional header row, '#' comments; linear between rows, the last row joined to the first over midnight")


def check(t) -> None:
    """``serving.traffic`` at plan time: RecipeError with one line naming the key."""
    if t.profile not in PROFILES:
        raise RecipeError(f"serving.traffic.profile must be one of {'|'.join(PROFILES)}, got {t.profile!r}")
    if t.profile == "none":
        return
    step = t.step_minutes
    if not (step > 0 and (1440.0 / step).is_integer()):
        raise RecipeError(f"serving.traffic.step_minutes must divide the day's 1440 minutes, got {step}")
    if t.profile == "constant" and not (t.rate is not None and t.rate > 0):
        raise RecipeError(f"serving.traffic.rate must be a positive requests/s for profile constant, got {t.rate}")
    if t.profile == "diurnal":
        for key in ("peak", "trough"):
            if not (getattr(t, key) is not None and getattr(t, key) > 0):
                raise RecipeError(f"serving.traffic.{key} must be a positive requests/s for profile diurnal, "
                                  f"got {getattr(t, key)}")
        if t.trough > t.peak:
            raise RecipeError(f"serving.traffic.trough must not exceed serving.traffic.peak, got {t.trough} > {t.peak}")
        if not 0 <= t.peak_hour < 24:
            raise RecipeError(f"serving.traffic.peak_hour must be in [0, 24), got {t.peak_hour}")
    if t.profile == "csv":
        if not t.csv:
            raise RecipeError(f"serving.traffic.csv must name a file for profile csv; {CSV_FORMAT}")
        read_csv(t.csv)


def parse_time(text: str) -> float:
    """Seconds since midnight from ``HH:MM[:SS]`` or a number of seconds (ValueError otherwise)."""
    if ":" in text:
        parts = [float(p) for p in text.split(":")]
        if len(parts) > 3:
            raise ValueError(text)
        return sum(p * f for p, f in zip(parts, (3600.0, 60.0, 1.0)))
    return float(text)


def read_csv(path: str) -> List[Tuple[float, float]]:
    """The ``(seconds, requests/s)`` rows of a profile CSV (``CSV_FORMAT``), sorted; RecipeError naming the key."""
    import csv

    key = f"serving.traffic.csv {path!r}"
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and "".join(r).strip() and not r[0].lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{key}: cannot be read ({getattr(e, 'strerror', None) or e}); {CSV_FORMAT}") from None
    points = []
    for n, row in enumerate(rows):
        try:
            t = parse_time(row[0].strip())
        except ValueError:
            if n == 0:
                continue  # the header
            raise RecipeError(f"{key}: row {n + 1}: time {row[0]!r} is neither seconds nor HH:MM; {CSV_FORMAT}") from None
        try:
            r = float(row[1])
        except (IndexError, ValueError):
            raise RecipeError(f"{key}: row {n + 1}: requests/s {','.join(row[1:2])!r} is not a number") from None
        if not (0 <= t < DAY_S) or not (math.isfinite(r) and r > 0):
            raise RecipeError(f"{key}: row {n + 1}: need a time within the day and a positive rate, got {row[:2]}")
        points.append((t, r))
    if not points:
        raise RecipeError(f"{key}: no rows; {CSV_FORMAT}")
    points.sort()
    if len({t for t, _ in points}) < len(points):
        raise RecipeError(f"{key}: two rows at the same time")
    return points

"""serving.traffic at plan time: its CSV read, bad profiles refused with one line naming the key (exit 2)."""

import subprocess
import sys

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.compose import compose
from optimizer.recipe.plan import plan
from optimizer.recipe.traffic import parse_time, read_csv


def test_csv_rows_in_seconds_and_clock_times_with_a_header_and_comments(tmp_path):
    f = tmp_path / "day.csv"
    f.write_text("# a day\ntime,requests_per_s\n18:00:00,200\n00:00,100\n43200,300\n")
    assert read_csv(str(f)) == [(0.0, 100.0), (43200.0, 300.0), (64800.0, 200.0)]  # sorted by time
    assert parse_time("14:30") == 52200.0 and parse_time("90") == 90.0
    f.write_text("00:00,1\n00:00:00,2\n")
    with pytest.raises(RecipeError, match="two rows at the same time"):
        read_csv(str(f))


def _csv(tmp_path, text):
    f = tmp_path / "p.csv"
    f.write_text(text)
    return f"serving.traffic.csv={f}"


@pytest.mark.parametrize("overrides, message", [
    (["serving.traffic.profile=weekly"], r"serving.traffic.profile must be one of none\|constant\|diurnal\|csv"),
    (["serving.traffic.profile=constant"], "serving.traffic.rate must be a positive"),
    (["serving.traffic.profile=constant", "serving.traffic.rate=-3"], "serving.traffic.rate must be a positive"),
    (["serving.traffic.profile=diurnal", "serving.traffic.peak=30"], "serving.traffic.trough must be a positive"),
    (["serving.traffic.profile=diurnal", "serving.traffic.peak=0", "serving.traffic.trough=1"],
     "serving.traffic.peak must be a positive"),
    (["serving.traffic.profile=diurnal", "serving.traffic.peak=30", "serving.traffic.trough=40"],
     "serving.traffic.trough must not exceed serving.traffic.peak"),
    (["serving.traffic.profile=diurnal", "serving.traffic.peak=30", "serving.traffic.trough=10",
      "serving.traffic.peak_hour=24"], r"serving.traffic.peak_hour must be in \[0, 24\)"),
    (["serving.traffic.profile=constant", "serving.traffic.rate=5", "serving.traffic.step_minutes=7"],
     "serving.traffic.step_minutes must divide"),
    (["serving.traffic.profile=csv"], "serving.traffic.csv must name a file"),
    (["serving.traffic.profile=csv", "serving.traffic.csv=/nonexistent/day.csv"],
     "serving.traffic.csv '/nonexistent/day.csv': cannot be read"),
    (["serving.traffic.profile=csv", "HEADER"], "serving.traffic.csv .*: no rows"),
    (["serving.traffic.profile=csv", "x,y\n00:00,lots\n"], "row 2: requests/s 'lots' is not a number"),
    (["serving.traffic.profile=csv", "00:00,10\n25:00,10\n"], "row 2: need a time within the day and a positive rate"),
    (["serving.traffic.profile=csv", "00:00,10\n06:00,0\n"], "row 2: need a time within the day and a positive rate"),
    (["serving.traffic.profile=csv", "00:00,10\nnoon,20\n"], "row 2: time 'noon' is neither seconds nor HH:MM"),
])
def test_bad_profiles_are_refused_at_plan_time_naming_the_key(tmp_path, overrides, message):
    overrides = [o if "=" in o else _csv(tmp_path, "time,rps\n" if o == "HEADER" else o) for o in overrides]
    with pytest.raises(RecipeError, match=message) as e:
        plan(compose("int8", overrides))
    assert "\n" not in str(e.value)


def test_explain_exits_2_naming_the_key():
    done = subprocess.run([sys.executable, "-m", "optimizer", "explain", "recipe=int8", "serving.traffic.profile=diurnal",
                           "serving.traffic.peak=10", "serving.traffic.trough=20"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "serving.traffic.trough must not exceed serving.traffic.peak, got 20.0 > 10.0" in done.stderr

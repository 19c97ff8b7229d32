"""The run told in words and factors: the verdict sentences and the cumulative dashboard come from summary.json's
own figures (factors of the source model at batch 1), and where the chosen variant's time goes."""

from optimizer.record import story


def _variant(name, chain, thr1, thr8, p99_1, score, precision="fp32", cost=None, cosine=None, profile=None):
    bench = {"1": {"throughput": thr1, "p99_ms": p99_1}, "8": {"throughput": thr8, "p99_ms": p99_1 * 3}}
    ev = {"metric": "accuracy", "score": score, **({"mean_cosine": cosine} if cosine else {})}
    v = {"name": name, "chain": chain, "status": "ok", "precision": precision, "benchmark": bench, "evaluation": ev}
    if cost:
        v["cost"] = {"cost_per_million": cost}
    if profile:
        v["profile"] = profile
    return v


PROFILE = {"batch_size": 8, "covered": 0.95, "op_types": {"QLinearConv": 0.8, "Transpose": 0.1, "Add": 0.05},
           "hints": ["QLinearConv dominates (80% of the time): it is where any further speed-up must come from"]}


def _summary(triton=None):
    return {"chosen": "quantize", "variants": [
        _variant("reference", [], 10.0, 40.0, 100.0, 98.0, cost=2.0),
        _variant("export", ["export"], 50.0, 200.0, 20.0, 98.0),
        {"name": "fuse", "chain": ["export", "fuse"], "status": "failed", "error": "x"},
        _variant("quantize", ["export", "quantize"], 80.0, 400.0, 10.0, 97.5, "int8", cost=0.2, cosine=0.999,
                 profile=PROFILE)], "triton": triton or {}}


def test_dashboard_factors_of_the_source_at_batch_1():
    board = story.dashboard(_summary(), price_per_hour=3.6)
    assert board["baseline"] == "reference at batch 1, one replica" and board["metric"] == "accuracy"
    rows = {r["step"]: r for r in board["rows"]}
    assert list(rows) == ["reference (batch 1)", "reference", "export", "quantize"]  # chain order, failed left out
    assert rows["reference (batch 1)"]["throughput_x"] == 1.0 and rows["reference"]["throughput_x"] == 4.0
    q = rows["quantize"]
    assert (q["batch"], q["throughput_x"], q["cost_x"], q["p99_x"], q["accuracy"]) == (8, 40.0, 40.0, 10.0, 97.5)
    assert q["cost_per_million"] == round(3.6 / 3600 / 400.0 * 1e6, 4)  # price / throughput


def test_the_served_configuration_ends_the_dashboard():
    triton = {"emitted": True, "capacity": {"used": 1000.0, "source": "measured: open-loop Poisson arrivals"},
              "tuning": {"max_batch_size": 32}}
    last = story.dashboard(_summary(triton))["rows"][-1]
    assert last["step"] == "served: quantize on Triton (measured)" and last["throughput_x"] == 100.0
    assert last["batch"] == 32 and last["p99_ms"] is None


def test_the_verdict_in_words():
    lines = story.verdict(_summary())
    assert lines == ["quantize (int8) saves 90% of the cost per million inferences ($2 → $0.2): 400 against 40 "
                     "samples/s at the best batch of each",
                     "p99 at batch 1 goes from 100.00 ms to 10.00 ms (10.0× lower)",
                     "accuracy 98.00 → 97.50 (-0.50 points), mean cosine 0.9990 to the reference"]
    assert story.time_line(_summary()) == ("time in quantize at batch 8: QLinearConv 80%, Transpose 10%, Add 5% (95% of "
                                           "a call); " + PROFILE["hints"][0])
    source = {**_summary(), "chosen": "reference"}
    assert story.verdict(source) == []  # nothing optimized to speak of


def test_report_sections():
    s = _summary()
    md = "\n".join(story.markdown(story.tell(s), s["variants"]))
    assert "### Verdict\n\n- quantize (int8) saves 90%" in md
    assert "| quantize | 8 | 400.0 | 40.0× | 10.00 | 10.0× | 40.0× | 97.50 |" in md
    assert "| quantize | 8 | QLinearConv 80%, Transpose 10%, Add 5% | 95% | QLinearConv dominates" in md
    assert story.tell({"variants": []}) is None and story.markdown(None, []) == []

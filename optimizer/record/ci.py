"""The run's CI outputs next to summary.json: ``report.md`` (fit for a pull-request comment) and ``junit.xml``
(one test case per gate and per variant, for a CI system's test report)."""

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

from optimizer.files import write_atomic

REPORT, JUNIT = "report.md", "junit.xml"
_ICON = {"passed": "✅ passed", "gate_failed": "❌ gate failed", "failed": "❌ a step failed", "error": "❌ error",
         "interrupted": "⏹ interrupted"}


def _chosen_line(summary: Dict) -> str:
    chosen = next((r for r in summary["variants"] if r["name"] == summary.get("chosen")), None)
    if chosen is None:
        return "**No variant chosen**: none met the recipe's constraints; nothing was emitted."
    chain = " → ".join(chosen["chain"]) or "the unmodified source model: no optimized variant survived"
    line = f"**Chosen: `{chosen['name']}`** ({chain}, {chosen.get('precision', '-')}), by {summary.get('objective')}"
    repo = summary.get("model_repository")
    return line + (f"; Triton repository `{_rel(repo, summary)}`" if repo else "")


def _rel(path: str, summary: Dict) -> str:
    try:
        return str(Path(path).relative_to(summary["output_dir"]))
    except (ValueError, KeyError, TypeError):
        return str(path)


def _gate_rows(summary: Dict) -> List[str]:
    from optimizer.decide.gates import num

    reg = summary.get("regression")
    if not reg:
        return []
    lines = ["", "### Regression gates", "", f"Baseline `{reg['baseline']}` (chosen there: "
             f"`{reg.get('baseline_chosen')}`). {reg['note'][0].upper() + reg['note'][1:]}.", ""]
    if reg["gates"]:
        lines += ["| gate | variant | metric | baseline | this run | interval over rounds | limit | result |",
                  "|---|---|---|---:|---:|---|---:|---|"]
        for g in reg["gates"]:
            interval = f"{num(g['interval'][0])}–{num(g['interval'][1])}" if g.get("interval") else "-"
            lines.append(f"| {g['name']} | {g['variant']} | {g['metric']} | {num(g['baseline'])} | {num(g['value'])} | "
                         f"{interval} | {num(g['limit'])} | {'✅' if g['passed'] else '❌'} |")
    return lines


def markdown(summary: Dict) -> str:
    """``report.md``: status, the chosen variant, the full table, gate results, warnings, plots."""
    from optimizer.record import story
    from optimizer.record.summary import triton_caption, markdown_table

    hw = summary.get("hardware", {}).get("name", "?")
    lines = [f"## optimizer: recipe `{summary['recipe']}` on {hw} — {_ICON.get(summary['status'], summary['status'])}",
             "", (summary.get("description") or "").strip(), "", _chosen_line(summary), ""]
    if summary.get("error"):
        lines += [f"**Error:** {summary['error']}", ""]
    if summary.get("variants"):
        lines += [markdown_table(summary), ""]
    caption = triton_caption(summary.get("triton") or {}).replace(f"{summary.get('output_dir')}/", "")
    if caption:
        lines += [caption, ""]
    failures = summary.get("gate_failures") or {}
    if failures:
        lines += ["### Gate failures", ""]
        lines += [f"- **{name}**: {'; '.join(why)}" for name, why in failures.items()] + [""]
    lines += _gate_rows(summary)
    lines += story.markdown(summary.get("story"), summary.get("variants") or [])
    if summary.get("warnings"):
        lines += ["", "### Warnings", ""] + [f"- {w}" for w in summary["warnings"]]
    if summary.get("plots"):
        lines += ["", "### Plots", ""] + [f"- [{p}]({p})" for p in summary["plots"]]
    lines += ["", f"Exit code {summary['exit_code']}; every figure is in `summary.json`."]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _case(suite: ET.Element, name: str, classname: str, seconds: float = 0.0, failure: str = "",
          skipped: str = "", error: str = "", out: str = "") -> None:
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time=f"{seconds:.3f}")
    if failure:
        ET.SubElement(case, "failure", message=failure.splitlines()[0][:500], type="gate").text = failure
    if error:
        ET.SubElement(case, "error", message=error.splitlines()[0][:500], type="step").text = error
    if skipped:
        ET.SubElement(case, "skipped", message=skipped)
    if out:
        ET.SubElement(case, "system-out").text = out


def junit(summary: Dict) -> str:
    """``junit.xml``: a case per variant (error when it failed) and per gate: the recipe's constraints, the Triton
    SLA, and every regression gate against the baseline."""
    recipe = summary["recipe"]
    suite = ET.Element("testsuite", name=f"optimizer.{recipe}")
    for r in summary["variants"]:
        ev = r.get("evaluation", {})
        facts = (("chain", ">".join(r["chain"]) or "source"), ("score", ev.get("score")),
                 ("mean_cosine", ev.get("mean_cosine")), ("violations", "; ".join(r.get("violations", [])) or None))
        out = "; ".join(f"{k}={v}" for k, v in facts if v is not None)
        _case(suite, f"variant {r['name']}", f"optimizer.{recipe}.variants", r.get("seconds", 0.0),
              error=r.get("error", "") if r["status"] == "failed" else "",
              skipped=r.get("error", "skipped") if r["status"] == "skipped" else "", out=out)
    if summary.get("error"):
        _case(suite, "recipe", f"optimizer.{recipe}.gates", error=summary["error"])
    elif summary.get("variants"):
        failures = summary.get("gate_failures") or {}
        violated = "\n".join(f"{n}: {'; '.join(w)}" for n, w in failures.items() if n not in ("triton", "regression"))
        _case(suite, "constraints", f"optimizer.{recipe}.gates",
              failure="" if summary.get("chosen") else f"no variant met the recipe's constraints\n{violated}",
              out=f"chosen: {summary.get('chosen')}")
        if (summary.get("triton") or {}).get("emitted") or "triton" in failures:
            _case(suite, "triton", f"optimizer.{recipe}.gates", failure="\n".join(failures.get("triton", [])))
    for g in (summary.get("regression") or {}).get("gates", []):
        _case(suite, f"regression {g['variant']} {g['name']}", f"optimizer.{recipe}.regression",
              failure="" if g["passed"] else g["message"], out=g["message"])
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(summary: Dict, out_dir: Path) -> Dict[str, str]:
    """Write report.md and junit.xml into ``out_dir``; return their file names."""
    out_dir = Path(out_dir)
    write_atomic(out_dir / REPORT, markdown(summary).encode())
    write_atomic(out_dir / JUNIT, junit(summary).encode())
    return {"markdown": REPORT, "junit": JUNIT}

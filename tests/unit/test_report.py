"""The HTML report: start offsets in the trace, the page's sections, escaping, the accepted file shapes, the CLI."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from report_fixtures import JS_URL, SCRIPT_PAYLOAD, SECTIONS, Dom, eval_data, hostile_trace, sample_trace

from litellm_fusion._core.usage import UsageLedger
from litellm_fusion._engine.pipeline import FusionRequest, run_fusion
from litellm_fusion._spec.config import FusionSpec, WebSpec
from litellm_fusion._web.search import SearchHit, SearchOutcome
from litellm_fusion._web.tools import MemberToolbox
from litellm_fusion.cli import commands as cli
from litellm_fusion.cli import demo
from litellm_fusion.report import TraceFormatError, eval_page, report_input, trace_page
from litellm_fusion.report.html import safe_href
from litellm_fusion.report.timeline import timeline_of
from litellm_fusion.testing import FakeCompletion, Reply

ANALYSIS = json.dumps(
    {
        "consensus": ["c"],
        "contradictions": [{"topic": "t", "stances": [{"model": "A", "stance": "x"}, {"model": "B", "stance": "y"}]}],
        "partial_coverage": [],
        "unique_insights": [],
        "blind_spots": [],
    }
)


# --- start offsets in the trace -------------------------------------------------------------------------


async def test_every_call_in_the_trace_has_a_start_offset_in_order():
    seam = FakeCompletion(
        {
            "openai/a": Reply("4", delay=0.05),
            "openai/b": Reply("four", delay=0.15),
            "openai/judge": [Reply("not json at all", delay=0.05), Reply(ANALYSIS, delay=0.02)],
            "openai/writer": Reply("The answer is 4.", delay=0.05),
        }
    )
    spec = FusionSpec.model_validate({"panel": ["openai/a", "openai/b"], "judge": "openai/judge", "synthesizer": "openai/writer"})
    result = await run_fusion(FusionRequest(name="t", spec=spec, messages=[{"role": "user", "content": "2+2?"}]), complete=seam)
    trace = result.trace
    members = trace["panel"]
    assert all(m["start_ms"] is not None and 0 <= m["start_ms"] < 50 for m in members)
    assert all(len(m["nested_calls"]) == 1 and m["nested_calls"][0]["start_ms"] >= m["start_ms"] for m in members)
    panel_end = max(m["start_ms"] + m["latency_ms"] for m in members)
    assert panel_end >= 150  # b slept 0.15 s
    judge = trace["judge"]
    assert [c["role"] for c in judge["nested_calls"]] == ["judge", "judge_repair"]  # the first reply was not JSON
    assert judge["start_ms"] >= panel_end - 1  # rounding to 0.1 ms either side
    first, repair = judge["nested_calls"]
    assert first["start_ms"] >= judge["start_ms"] and repair["start_ms"] >= first["start_ms"] + first["latency_ms"] - 1
    synth = trace["synthesizer"]
    assert synth["start_ms"] >= repair["start_ms"] + repair["latency_ms"] - 1
    assert synth["start_ms"] + synth["latency_ms"] <= trace["latency_ms"] + 1
    # The old keys are still there.
    assert {"latency_ms", "usage", "cost", "calls", "nested_calls"} <= judge.keys() and judge["calls"] == 2 and "latency_ms" in members[0]


async def test_web_tool_calls_carry_their_start_offset():
    async def search(query: str, n: int) -> SearchOutcome:
        return SearchOutcome(query=query, hits=[SearchHit(title="t", url="https://example.org/a", snippet="s")], latency_ms=1.0)

    ledger = UsageLedger()
    toolbox = MemberToolbox(spec=WebSpec(), search=search, fetcher=None, ledger=ledger)
    call = {"id": "1", "function": {"name": "web_search", "arguments": json.dumps({"query": "q"})}}
    await toolbox.run([call, {"id": "2", "function": {"name": "nope", "arguments": "{}"}}])
    assert [c.status for c in toolbox.calls] == ["ok", "refused"]
    assert all(c.as_dict()["start_ms"] is not None and c.as_dict()["start_ms"] >= 0 for c in toolbox.calls)
    assert ledger.records[0].role == "web_search" and ledger.records[0].start_ms is not None


# --- the page -----------------------------------------------------------------------------------------------


def test_the_page_has_every_section_and_the_panel_side_by_side():
    page = trace_page(sample_trace(), question="What is the capital of France?", answer="Paris.")
    dom = Dom(page)
    assert dom.ids()[: len(SECTIONS)] == SECTIONS
    cards = [a for tag, a in dom.tags if tag == "article"]
    # Lettered members first, in letter order, the failed one last.
    assert [c["data-model"] for c in cards] == ["openai/gpt-4o-mini", "openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5"]
    text = " ".join(dom.text)
    for expected in ("What is the capital of France?", "Paris.", "RateLimitError: slow down", "Paris facts", "1.20 s", "150 tokens"):
        assert expected in text
    assert '<a href="https://example.org/paris"' in page
    # A self-contained file: no script, nothing fetched, a CSP that forbids both.
    assert not any(tag in ("script", "link", "iframe", "object", "embed") for tag, _ in dom.tags)
    assert not any(a.get("src") for _, a in dom.tags)
    assert "default-src 'none'" in page


def test_each_stance_sits_in_the_column_of_the_answer_it_came_from():
    trace = sample_trace()
    trace["analysis"]["contradictions"][0]["stances"].reverse()  # the judge's order must not matter
    page = trace_page(trace)
    block = page.split('class="contradiction"', 1)[1]
    stances = re.findall(r'<div class="stance( empty)?">(.*?)</div>', block)
    # Columns follow the cards: A gpt-4o-mini, B gpt-4.1-mini, then the failed member (no stance).
    assert [s for _, s in stances] == ["No source given.", "Cites example.org.", "no stance"]
    assert stances[2][0] == " empty"


def test_the_timeline_places_every_call_on_one_axis():
    timeline = timeline_of(sample_trace())
    assert timeline.exact and timeline.total_ms == 4530.0
    calls = [(s.kind, s.start_ms, s.end_ms) for s in timeline.calls]
    assert ("web_search", 700.0, 1000.0) in calls and ("web_fetch", 1010.0, 1510.0) in calls
    assert ("judge", 2410.0, 3310.0) in calls and ("judge_repair", 3315.0, 3715.0) in calls
    assert ("synthesizer", 3720.0, 4520.0) in calls
    assert sum(1 for kind, _, _ in calls if kind == "model") == 3  # A's call and B's two around its tool calls
    svg = trace_page(sample_trace()).split("<svg", 1)[1].split("</svg>", 1)[0]
    bars = re.findall(r'<rect class="span (\w+)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    by_kind = {kind: (float(x), float(w)) for kind, x, w in bars}
    # The synthesizer starts right of where the judge's repair ends, on the same scale.
    repair_x, repair_w = by_kind["judge_repair"]
    assert by_kind["synthesizer"][0] >= repair_x + repair_w - 0.2
    assert "Approximate" not in trace_page(sample_trace())


def test_a_trace_without_start_offsets_is_laid_out_from_latencies_and_says_so():
    trace = sample_trace()
    for member in trace["panel"]:
        member.pop("start_ms")
        member.pop("nested_calls")
        for tool in member["tool_calls"]:
            tool.pop("start_ms")
    trace["judge"].pop("start_ms")
    trace["judge"].pop("nested_calls")
    trace["synthesizer"].pop("start_ms")
    timeline = timeline_of(trace)
    assert not timeline.exact
    spans = {(s.kind, s.stage): (s.start_ms, s.end_ms) for s in timeline.spans}
    assert spans[("member", "B · openai/gpt-4.1-mini")] == (0.0, 2400.0)
    assert spans[("web_search", "B · openai/gpt-4.1-mini")] == (0.0, 300.0)
    assert spans[("web_fetch", "B · openai/gpt-4.1-mini")] == (300.0, 800.0)  # back to back
    assert spans[("judge", "judge")] == (2400.0, 3700.0)  # after the slowest member
    assert spans[("synthesizer", "synthesizer")] == (3700.0, 4500.0)
    assert "Approximate" in trace_page(trace)


def test_model_and_web_text_is_inert():
    page = trace_page(hostile_trace(), question=SCRIPT_PAYLOAD, answer=SCRIPT_PAYLOAD)
    dom = Dom(page)
    tags = {tag for tag, _ in dom.tags}
    assert "script" not in tags and "img" not in tags
    assert [a for _, a in dom.tags if any(name.startswith("on") for name in a)] == []
    hrefs = [a["href"] for tag, a in dom.tags if tag == "a"]
    assert hrefs == ["https://example.org/ok?q=\"><svg/onload=document.documentElement.setAttribute('data-pwned','url')>"]
    assert "javascript" not in " ".join(hrefs)
    # svg only as the timeline; the payload's <svg onload> stayed text.
    assert [a.get("class") for tag, a in dom.tags if tag == "svg"] == ["timeline"]
    text = "".join(dom.text)
    assert SCRIPT_PAYLOAD in text and "onerror=" in text and JS_URL in text  # shown, as text
    assert page.count("<script") == 0 and "<img" not in page


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://example.org/a?b=c", True),
        ("http://example.org", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,hi", False),
        ("//example.org/x", False),
        ("/relative", False),
        ("https://", False),
        (None, False),
    ],
)
def test_only_absolute_http_links(url, ok):
    assert (safe_href(url) is not None) is ok


def test_a_degraded_run_and_a_failed_judge_render():
    trace = sample_trace()
    trace["analysis"], trace["judge_failed"] = None, "timeout"
    trace["judge"].update(status="failed", failed_reason="timeout", nested_calls=[], latency_ms=0.0)
    page = trace_page(trace)
    assert "The judge failed (timeout)" in page and "degraded" in page
    judge = next(s for s in timeline_of(trace).spans if s.kind == "judge")
    assert (judge.start_ms, judge.end_ms, judge.status) == (2408.0, 3720.0, "failed")  # until the synthesizer took over


# --- the file shapes ----------------------------------------------------------------------------------------


def test_accepts_a_bare_trace_json_output_and_a_whole_response():
    trace = sample_trace()
    bare = report_input(trace)
    assert bare.trace is trace and bare.question is None and bare.answer is None
    cli_json = report_input({**trace, "question": "Q?", "answer": "A."})
    assert (cli_json.question, cli_json.answer) == ("Q?", "A.")
    response = {"id": "x", "choices": [{"message": {"role": "assistant", "content": "Paris."}}], "fusion": trace}
    whole = report_input(response, question="Which city?")
    assert whole.trace is trace and whole.answer == "Paris." and whole.question == "Which city?"
    assert report_input({"fusion": trace}).trace is trace


@pytest.mark.parametrize(
    "data,needle",
    [
        ([1, 2], "not an object"),
        ({"choices": []}, "no `panel` list"),
        ({"fusion": {"x": 1}}, "no `fusion.panel` list"),
        ({"panel": [1]}, "list of objects"),
    ],
)
def test_not_a_trace_is_an_error_naming_the_field(data, needle):
    with pytest.raises(TraceFormatError, match=re.escape(needle)):
        report_input(data)


# --- the commands -------------------------------------------------------------------------------------------


def test_demo_html_and_report_of_its_json(tmp_path: Path, capsys):
    html_file, json_file, again = tmp_path / "demo.html", tmp_path / "demo.json", tmp_path / "again.html"
    assert cli.main(["demo", "--scripted", "--json", "--html", str(html_file)]) == 0
    out = capsys.readouterr()
    json_file.write_text(out.out)
    data = json.loads(out.out)
    assert data["question"] == demo.DEMO_QUESTION and data["answer"] == demo.DEMO_FINAL
    assert f"wrote the HTML report to {html_file}" in out.err
    page = html_file.read_text()
    assert Dom(page).ids()[: len(SECTIONS)] == SECTIONS
    assert "$513" in page and "half as many cookies" in page  # a panel answer and the question
    assert page.count('class="card member') == 3
    assert cli.main(["report", str(json_file), "-o", str(again)]) == 0
    assert Dom(again.read_text()).ids() == Dom(page).ids()


def test_report_of_a_proxy_response_and_bad_input(tmp_path: Path, capsys):
    response = {"choices": [{"message": {"content": "Paris."}}], "fusion": sample_trace()}
    saved, out = tmp_path / "response.json", tmp_path / "r.html"
    saved.write_text(json.dumps(response))
    assert cli.main(["report", str(saved), "-o", str(out), "--question", "Capital?"]) == 0
    page = out.read_text()
    assert "Capital?" in page and "Paris." in page
    (tmp_path / "bad.json").write_text('{"choices": []}')
    assert cli.main(["report", str(tmp_path / "bad.json"), "-o", str(out)]) == 2
    assert "no `panel` list" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    assert cli.main(["report", str(tmp_path / "broken.json"), "-o", str(out)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "missing.json"), "-o", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err


# --- the eval page ------------------------------------------------------------------------------------------


def test_the_eval_page_has_the_table_the_plot_and_every_question():
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    page = eval_page(eval_data(), plot_png=png)
    dom = Dom(page)
    assert dom.ids()[:4] == ["summary", "table", "plot", "questions"]
    images = [a["src"] for tag, a in dom.tags if tag == "img"]
    assert len(images) == 1 and images[0].startswith("data:image/png;base64,iVBORw0KGgo")
    text = " ".join(dom.text)
    assert "solo <b>mini</b>" in text and "50.0%" in text and "$0.001200" in text and "Timeout" in text
    assert "script" not in {tag for tag, _ in dom.tags}
    without = eval_page(eval_data(), plot_note="no plot: matplotlib is not installed")
    assert "<img" not in without and "matplotlib is not installed" in without


def test_a_trace_page_does_not_mutate_its_input():
    trace = sample_trace()
    before = copy.deepcopy(trace)
    trace_page(trace, question="q", answer="a")
    assert trace == before


def test_ask_html_for_a_run_and_for_a_failed_run(tmp_path: Path, capsys):
    from litellm_fusion.testing import Script, ScriptedServer

    analysis = {"consensus": ["Paris"], "contradictions": [], "partial_coverage": [], "unique_insights": [], "blind_spots": []}
    scripts = {
        "a": Script(text="Paris."),
        "b": Script(text="It is Paris."),
        "judge": Script(text=json.dumps(analysis)),
        "down": Script(status=500),
    }
    with ScriptedServer(scripts) as server:

        def spec(panel: list[str]) -> str:
            member = lambda m: {"model": f"openai/{m}", "api_base": server.base_url, "api_key": "sk-local"}  # noqa: E731
            return json.dumps({"panel": [member(m) for m in panel], "judge": member("judge"), "timeout": 10})

        ok, failed = tmp_path / "ok.html", tmp_path / "failed.html"
        assert cli.main(["ask", "Capital of France?", "--preset", "adhoc", "--fusion", spec(["a", "b"]), "--html", str(ok)]) == 0
        page = ok.read_text()
        assert "Capital of France?" in page and "It is Paris." in page and "The run failed" not in page
        assert cli.main(["ask", "Capital?", "--preset", "adhoc", "--fusion", spec(["down", "a"]), "--html", str(failed)]) == 1
    page = failed.read_text()
    err = capsys.readouterr().err
    assert f"wrote the HTML report to {failed}" in err
    # The failed run's page names the member that failed and why, and the error the run ended with.
    # (0 or 1 of 2: once "down" fails the quorum of 2 is out of reach, and "a" may be dropped before it answers.)
    assert "The run failed, so there is no final answer" in page and re.search(r"[01] of 2 panel members answered, 2 needed", page)
    assert 'data-model="openai/down"' in page and "InternalServerError" in page


def test_a_malformed_trace_still_renders():
    # A hand-edited or truncated file: wrong types everywhere the page reads; it must render, not crash.
    trace = sample_trace()
    trace["panel"][0].update(latency_ms="slow", usage="many", cost="free", sources="none", tool_calls=[1, "x"], nested_calls={"a": 1})
    trace["panel"][1].update(start_ms="later", letter=None)
    trace["analysis"] = {"consensus": "one string", "contradictions": [{"topic": 1, "stances": "x"}], "partial_coverage": [{"models": "A"}]}
    trace.update(judge="gpt", synthesizer=["x"], usage=None, cost=None, latency_ms=None, letters=["A"])
    page = trace_page(trace)
    assert Dom(page).ids()[: len(SECTIONS)] == SECTIONS
    assert page.count('class="card member') == 3 and "one string" not in page  # a string is not a list of points


def test_a_streamed_demo_writes_its_report_too(tmp_path: Path, capsys):
    page_file = tmp_path / "stream.html"
    assert cli.main(["demo", "--scripted", "--stream", "--html", str(page_file)]) == 0
    assert demo.DEMO_FINAL.splitlines()[0] in capsys.readouterr().out  # streamed as before
    page = page_file.read_text()
    assert demo.DEMO_FINAL.splitlines()[0] in page and 'class="span synthesizer"' in page and "Approximate" not in page


def test_a_summary_trace_says_the_answers_were_not_exposed():
    from litellm_fusion._host.clients import exposed_trace

    page = trace_page(exposed_trace(sample_trace(), "summary"))
    assert page.count("(answer not exposed)") == 2 and "Paris is the capital." not in page  # the two members that answered

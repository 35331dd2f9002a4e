"""Shadow mode and example anchoring, end to end: the real openai SDK -> thinkstop
(uvicorn on loopback) -> the fake reasoning server.

Shadow mode must leave the client's answer and the upstream's stream exactly as without
thinkstop, while writing one parseable trace per request with the policy's would-be halt.
Anchors must reach the upstream as few-shot turns (or system text), and a request's
opt-out must remove them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes import FakeReasoningServer, Script, ServerThread
from tests.proxy.conftest import UPSTREAM_KEY, LockedBuffer
from thinkstop.proxy.config import ConfigError, parse_config
from thinkstop.proxy.http.app import create_app
from thinkstop.proxy.upstreams.registry import build_upstream
from thinkstop.scheduler import parse_traces

PROMPT: list[Any] = [{"role": "user", "content": "How many fruits are in the basket?"}]
EXAMPLES = [{"question": f"Example question {i}?", "answer": f"<answer>{i}</answer>"}
            for i in range(1, 7)]


def _entry(name: str, base: str, **thinkstop: Any) -> dict[str, Any]:
    return {"model_name": name, "thinkstop": {"chunk_tokens": 32, "probe_timeout": 2.0,
                                              **thinkstop},
            "litellm_params": {"model": "openai/fake", "api_base": base,
                               "api_key": "os.environ/FAKE_UPSTREAM_KEY"}}


def _config(base: str, tmp: Path, **settings: Any) -> Any:
    anchors = tmp / "anchors.jsonl"
    anchors.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES), encoding="utf-8")
    raw = {
        "model_list": [
            _entry("plain", base),
            _entry("shadowed", base, shadow=True),
            _entry("anchored", base, anchors=str(anchors), anchors_max=4),
            _entry("anchored-system", base, anchors=str(anchors), anchors_mode="system"),
        ],
        "thinkstop_settings": {"trace_dir": str(tmp / "traces"), **settings},
    }
    return parse_config(raw, environ={"FAKE_UPSTREAM_KEY": UPSTREAM_KEY})


@pytest.fixture
def served(fake: FakeReasoningServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    config = _config(fake.base_url, tmp_path, trace_prompts=False)
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    server = ServerThread(create_app(config, upstreams, log_stream=LockedBuffer()),
                          lifespan="on")
    server.start()
    try:
        yield f"{server.url}/v1", tmp_path / "traces"
    finally:
        server.stop()  # the lifespan's end flushes the trace files


def _client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=30)


async def _stream(client: openai.AsyncOpenAI, model: str, **kw: Any
                  ) -> tuple[str, str, dict[str, Any]]:
    stream = await client.chat.completions.create(model=model, messages=PROMPT, stream=True,
                                                  **kw)
    reasoning, content, last = [], [], {}
    async for chunk in stream:
        data = chunk.model_dump()
        last = data
        for choice in data["choices"]:
            reasoning.append(choice["delta"].get("reasoning_content") or "")
            content.append(choice["delta"].get("content") or "")
    return "".join(reasoning), "".join(content), last


async def test_shadow_mode_changes_nothing_and_records_what_halting_would_have_done(
    fake: FakeReasoningServer, served: tuple[str, Path]
) -> None:
    url, _ = served
    script = Script.overthinking(right="42", wrong="41", total=600, drift_at=400,
                                 token_delay=0.001)
    async with _client(url) as client:
        # Halting on: the plain model halts early on the right answer.
        fake.reset(script)
        _, halted_content, halted_last = await _stream(client, "plain")
        assert halted_last["thinkstop"]["halted"]
        # Shadow: exactly what the model alone writes, its whole reasoning streamed.
        fake.reset(script)
        reasoning, content, last = await _stream(
            client, "shadowed", stream_options={"include_usage": True})
        assert fake.wait(lambda s: s.streams_completed == 1)
        stats = fake.stats
        assert stats.streams_closed_early == 0 and stats.continuation_requests == 0
        assert stats.sent_reasoning_tokens == 600
        assert content == "The answer is 41." != halted_content
        assert reasoning == "".join(script.reasoning)
        decision = last["thinkstop"]
        assert not decision["halted"] and decision["shadow"] is True
        assert decision["would_halt"]["reason"] == "plateau"
        assert decision["would_halt"]["tokens"] < 400
        assert decision["probes"] > 0  # it watched as usual
        # And a whole (non-streamed) shadowed request: the same answer.
        fake.reset(script)
        whole = await client.chat.completions.create(model="shadowed", messages=PROMPT)
        assert whole.choices[0].message.content == "The answer is 41."


def _read_traces(folder: Path) -> list[Any]:
    lines = [line for f in sorted(folder.glob("traces-*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    return list(parse_traces(lines))


async def test_shadow_traces_are_written_parseable_and_hold_the_decisions(
    fake: FakeReasoningServer, tmp_path: Path
) -> None:
    config = _config(fake.base_url, tmp_path)
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    server = ServerThread(create_app(config, upstreams, log_stream=LockedBuffer()),
                          lifespan="on")
    server.start()
    try:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x",
                                      max_retries=0, timeout=30) as client:
            fake.reset(Script.overthinking(total=600, drift_at=400, token_delay=0.001))
            await _stream(client, "shadowed")
            fake.reset(Script.overthinking(total=600, drift_at=400, token_delay=0.001))
            # a per-request shadow on a model that halts
            _, _, last = await _stream(client, "plain",
                                       extra_body={"thinkstop": {"shadow": True}})
            assert not last["thinkstop"]["halted"]
            fake.reset(Script.overthinking(total=600, drift_at=400, token_delay=0.001))
            _, _, last = await _stream(client, "plain")  # not shadowed: no trace
            assert last["thinkstop"]["halted"]
    finally:
        server.stop()
    traces = _read_traces(tmp_path / "traces")
    assert [t.task for t in traces] == ["shadowed", "plain"]
    for trace in traces:
        assert trace.expected is None and trace.natural.answer == "41"
        assert trace.natural.tokens == 600
        assert len(trace.steps) >= 10 and trace.chunk_tokens == 32
        # right early, then the drift, as the probes saw it
        answers = [s.answer for s in trace.steps]
        assert "42" in answers and answers[-1] == "41"
        meta = trace.meta or {}
        assert meta["shadow"] is True and meta["model"] == trace.task
        assert meta["would_halt"]["reason"] == "plateau"
        assert meta["would_halt"]["changed_answer"] is True  # 42 at the halt, 41 at the end
        assert meta["would_halt"]["saved_tokens"] > 0
        assert "messages" not in meta  # no prompt text unless configured
        assert meta["started_at"] <= meta["finished_at"]


async def test_shadow_metrics_count_would_have_halted_and_saved(
    fake: FakeReasoningServer, served: tuple[str, Path]
) -> None:
    import httpx

    url, _ = served
    async with _client(url) as client:
        for _ in range(2):
            fake.reset(Script.overthinking(total=600, drift_at=400, token_delay=0.001))
            await _stream(client, "shadowed")
    async with httpx.AsyncClient() as http:
        text = (await http.get(url.removesuffix("/v1") + "/metrics")).text
    assert 'thinkstop_shadow_requests_total{model="shadowed"} 2.0' in text
    assert 'thinkstop_shadow_would_halt_total{model="shadowed",reason="plateau"} 2.0' in text
    assert 'thinkstop_shadow_would_change_answer_total{model="shadowed"} 2.0' in text
    saved = next(line for line in text.splitlines()
                 if line.startswith('thinkstop_shadow_would_save_tokens_total{model="shadowed"}'))
    assert float(saved.split()[-1]) > 200


async def test_anchors_reach_the_upstream_and_a_request_can_turn_them_off(
    fake: FakeReasoningServer, served: tuple[str, Path]
) -> None:
    url, _ = served
    async with _client(url) as client:
        fake.reset(Script(reasoning=[" zq"] * 40))
        reply = await client.chat.completions.create(model="anchored", messages=PROMPT)
        main = fake.stats.of_kind("main")[-1].body["messages"]
        # four examples (anchors_max), as turns before the conversation
        assert [m["role"] for m in main] == ["user", "assistant"] * 4 + ["user"]
        assert main[0]["content"] == "Example question 1?"
        assert main[7]["content"] == "<answer>4</answer>"
        assert main[-1]["content"] == PROMPT[0]["content"]
        decision = reply.model_dump()["thinkstop"]
        assert decision["anchors"]["examples"] == 4 and decision["anchors"]["tokens"] > 0
        # the probes read the same prompt, examples included
        assert all(len(r.body["messages"]) >= 9 for r in fake.stats.of_kind("probe"))

        fake.reset(Script(reasoning=[" zq"] * 40))
        reply = await client.chat.completions.create(
            model="anchored", messages=PROMPT, extra_body={"thinkstop": {"anchors": False}})
        main = fake.stats.of_kind("main")[-1].body["messages"]
        assert main == PROMPT
        assert reply.model_dump()["thinkstop"]["anchors"] is None

        fake.reset(Script(reasoning=[" zq"] * 40))
        await client.chat.completions.create(
            model="anchored-system",
            messages=[{"role": "system", "content": "Be brief."}, *PROMPT])
        main = fake.stats.of_kind("main")[-1].body["messages"]
        assert [m["role"] for m in main] == ["system", "user"]
        assert main[0]["content"].startswith("Be brief.\n\nWorked examples")
        assert "Example question 6?" in main[0]["content"]  # all six (default max 8)

        # a request may not name a file of the server's
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="anchored", messages=PROMPT,
                extra_body={"thinkstop": {"anchors": "/etc/passwd"}})
        assert "anchors" in str(caught.value) and "operator" in str(caught.value)


def test_a_bad_anchors_file_or_trace_folder_stops_the_app_with_a_clear_error(
    tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n', encoding="utf-8")
    raw = {"model_list": [_entry("m", "http://127.0.0.1:9", anchors=str(bad))]}
    config = parse_config(raw, environ={"FAKE_UPSTREAM_KEY": "k"})
    upstreams = {e.model_name: build_upstream(e.model_name, e.litellm_params)
                 for e in config.model_list}
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.thinkstop\.anchors: .*bad\.jsonl: "
                                          r"line 1: 'answer' must be a non-empty string"):
        create_app(config, upstreams)
    raw = {"model_list": [_entry("m", "http://127.0.0.1:9", anchors=str(tmp_path / "no"))]}
    config = parse_config(raw, environ={"FAKE_UPSTREAM_KEY": "k"})
    with pytest.raises(ConfigError, match="cannot read anchors file"):
        create_app(config, upstreams)
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    raw = {"model_list": [_entry("m", "http://127.0.0.1:9")],
           "thinkstop_settings": {"trace_dir": str(blocker / "traces")}}
    config = parse_config(raw, environ={"FAKE_UPSTREAM_KEY": "k"})
    with pytest.raises(ConfigError, match=r"thinkstop_settings\.trace_dir: cannot write traces"):
        create_app(config, upstreams)

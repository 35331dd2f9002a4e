"""Bad input gets a clear, OpenAI-shaped 4xx; a fuzzer finds no 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeReasoningServer, Script, words
from tests.fakes.memory_upstream import MemoryUpstream
from tests.hardening.proxies import LoopProbe, config, running
from tests.proxy.conftest import Proxy
from thinkstop.proxy.config import parse_config
from thinkstop.proxy.http.app import create_app

PROMPT = [{"role": "user", "content": "q"}]
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small(fake_upstream: FakeReasoningServer) -> Iterator[tuple[Proxy, LoopProbe]]:
    with running(config(fake_upstream.base_url, {"max_request_bytes": LIMIT})) as pair:
        yield pair


def assert_openai_error(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error: dict[str, Any] = reply.json()["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and error["message"]
    return error


# Bad parameters are 400s, as OpenAI answers them (its SDK raises BadRequestError).
@pytest.mark.parametrize(("body", "status", "param", "says"), [
    ({"model": "chat"}, 400, "messages", "messages: Field required"),
    ({"messages": PROMPT}, 400, "model", "model: Field required"),
    ({"model": "chat", "messages": "hi"}, 400, "messages", "messages:"),
    ({"model": "chat", "messages": [{"content": "x"}]}, 400, "messages.0.role", "role"),
    ({"model": "chat", "messages": PROMPT, "temperature": 7}, 400, "temperature", "2"),
    ({"model": "nope", "messages": PROMPT}, 404, "model", "served: chat, raw"),
    ({"model": "chat", "messages": PROMPT, "thinkstop": {"policy": "magic"}}, 400,
     "thinkstop.policy", "valid policies: "),
    ({"model": "chat", "messages": PROMPT, "thinkstop": {"policy": "plateau:wndow=3"}}, 400,
     "thinkstop.policy", "valid parameters: "),
    ({"model": "chat", "messages": PROMPT, "thinkstop": {"polcy": "plateau"}}, 400,
     "thinkstop.polcy", "valid thinkstop fields: policy, chunk_tokens"),
    ({"model": "chat", "messages": PROMPT, "thinkstop": {"min_tokens": 9, "max_tokens": 3}},
     400, "thinkstop", "min_tokens (9) must not exceed max_tokens (3)"),
    ({"model": "chat", "messages": PROMPT, "n": 0}, 400, "n", "greater than or equal to 1"),
    ({"model": "chat", "messages": PROMPT, "tools": [{"type": "function"}]}, 400, "tools.0",
     "a function tool needs its function definition"),
    ({"model": "chat", "messages": [{"role": "tool", "content": "4"}]}, 400, "messages.0",
     "a tool message needs the tool_call_id"),
    ({"model": "raw", "messages": PROMPT, "tools": [
        {"type": "function", "function": {"name": "f"}}]}, 400, "tools",
     "cannot carry tools"),
])
async def test_bad_requests_name_the_field(small: tuple[Proxy, LoopProbe],
                                           fake: FakeReasoningServer, body: dict[str, Any],
                                           status: int, param: str, says: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{small[0].url}/chat/completions", json=body)
    error = assert_openai_error(reply, status)
    assert error["param"] == param and says in error["message"]
    if param.startswith("thinkstop"):  # the documented code of a bad thinkstop option
        assert error["code"] == "invalid_thinkstop"
    elif status == 400 and param != "tools":
        assert error["code"] == "validation_error"
    assert fake.stats.requests == []  # nothing reached the upstream


async def test_invalid_json_and_oversize_bodies(small: tuple[Proxy, LoopProbe],
                                                fake: FakeReasoningServer) -> None:
    url = f"{small[0].url}/chat/completions"
    big = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x" * LIMIT}]})

    async def chunked() -> Any:  # no Content-Length: the limit still holds
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096].encode()

    async with httpx.AsyncClient(timeout=10) as http:
        bad = await http.post(url, content=b'{"model": "chat", "messages": [',
                              headers={"content-type": "application/json"})
        assert assert_openai_error(bad, 400)["code"] == "invalid_json"
        declared = await http.post(url, content=big.encode(),
                                   headers={"content-type": "application/json"})
        assert assert_openai_error(declared, 413)["code"] == "request_too_large"
        streamed = await http.post(url, content=chunked(),
                                   headers={"content-type": "application/json"})
        assert assert_openai_error(streamed, 413)["code"] == "request_too_large"
        fits = await http.post(url, json={"model": "chat", "messages": PROMPT,
                                          "thinkstop": {"enabled": False}})
        assert fits.status_code == 200
    assert len(fake.stats.requests) == 1


# -- fuzz ------------------------------------------------------------------------------
LEAF = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"])},
    optional={"content": st.text(max_size=20), "name": st.text(max_size=5)})
THINKSTOP = st.fixed_dictionaries({}, optional={
    "policy": st.sampled_from(["plateau", "fixed:budget=5", "consistency:window=2",
                               "plateau:window=0", "confidence", "nope", ""]),
    "chunk_tokens": st.integers(-1, 8), "min_tokens": st.integers(-1, 12),
    "max_tokens": st.integers(-1, 12), "max_probes": st.integers(-1, 3),
    "enabled": st.booleans(), "stream_reasoning": st.booleans(),
})
# Mostly plausible requests, so that the fuzzer gets past validation and into the run...
PLAUSIBLE = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "m", "m", "other"]),
     "messages": st.lists(MESSAGE, min_size=1, max_size=3)},
    optional={
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "n": st.integers(0, 3), "temperature": st.floats(-1, 3),
        "max_tokens": st.integers(-1, 10**20), "stop": st.text(max_size=3),
        "tools": st.lists(st.fixed_dictionaries({"type": st.just("function")}), max_size=1),
        "thinkstop": THINKSTOP, "user": st.text(max_size=5), "seed": st.integers(),
    })
FIELDS = ["model", "messages", "stream", "stream_options", "n", "temperature", "top_p",
          "max_tokens", "stop", "thinkstop", "tools", "logit_bias", "extra"]
# ...then up to two fields replaced by arbitrary JSON.
BODY = st.builds(lambda base, junk: {**base, **junk}, PLAUSIBLE,
                 st.dictionaries(st.sampled_from(FIELDS), VALUE, max_size=2))
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "", "application/x-www"])


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    cfg = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "x/m"},
                                        "thinkstop": {"chunk_tokens": 4}}]}, environ={})
    upstream = MemoryUpstream(Script(reasoning=words(12)))
    app = create_app(cfg, {"m": upstream}, log_stream=open("/dev/null", "w"))  # noqa: SIM115
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    yield loop, client
    loop.run_until_complete(client.aclose())
    loop.close()


def check(reply: httpx.Response) -> None:
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        assert_openai_error(reply, reply.status_code)
    elif reply.headers["content-type"].startswith("text/event-stream"):
        events = [line for line in reply.text.splitlines() if line.startswith("data: ")]
        assert events.count("data: [DONE]") == 1 and events[-1] == "data: [DONE]"
    else:
        assert "thinkstop" in reply.json()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODY, content_type=CONTENT_TYPES)
def test_fuzzed_bodies_never_get_a_5xx(
    fuzz_client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient],
    body: dict[str, Any], content_type: str,
) -> None:
    loop, client = fuzz_client
    data = json.dumps(body).encode()  # NaN and Infinity included, as Python writes them
    reply = loop.run_until_complete(client.post(
        "/v1/chat/completions", content=data, headers={"content-type": content_type}))
    check(reply)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_get_a_5xx(
    fuzz_client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient], raw: bytes
) -> None:
    loop, client = fuzz_client
    reply = loop.run_until_complete(client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}))
    check(reply)


# -- issue 15 rows 4 and 12: text that is JSON but not Unicode, absurd numbers, echoes ---
async def test_a_lone_surrogate_is_a_400_naming_the_field(
    small: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    # Valid JSON (json.dumps writes the escape), but no UTF-8 encoding exists for it: it
    # must not reach the upstream client, where it failed as a 500.
    body = '{"model": "chat", "messages": [{"role": "user", "content": "a \\ud800 b"}]}'
    base = small[0].url
    async with httpx.AsyncClient(timeout=10) as http:
        for path, text in [("/chat/completions", body),
                           ("/responses", '{"model": "chat", "input": "\\udfff"}'),
                           ("/completions", '{"model": "raw", "prompt": "x\\ud83d"}')]:
            reply = await http.post(f"{base}{path}", content=text.encode(),
                                    headers={"content-type": "application/json"})
            error = assert_openai_error(reply, 400)
            assert "lone surrogate" in error["message"], path
    assert "messages[0].content" in assert_openai_error(
        await _post(base, body), 400)["message"]
    assert fake.stats.requests == []
    assert "Traceback" not in small[0].logs.take()


async def _post(base: str, text: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{base}/chat/completions", content=text.encode(),
                               headers={"content-type": "application/json"})


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_absurd_token_caps_are_refused_not_forwarded(
    small: tuple[Proxy, LoopProbe], fake: FakeReasoningServer, field: str
) -> None:
    reply = await _post(small[0].url, json.dumps(
        {"model": "chat", "messages": PROMPT, field: 10**30}))
    error = assert_openai_error(reply, 400)
    assert error["param"] == field and "10000000" in error["message"]
    assert fake.stats.requests == []


async def test_a_huge_model_name_is_not_echoed_back(small: tuple[Proxy, LoopProbe]) -> None:
    name = "m" * 50_000  # under the body limit, far over anything worth repeating
    reply = await _post(small[0].url, json.dumps({"model": name, "messages": PROMPT}))
    error = assert_openai_error(reply, 404)
    assert len(reply.content) < 1000 and "(50002 characters)" in error["message"]
    async with httpx.AsyncClient(timeout=10) as http:
        one = await http.get(f"{small[0].url}/models/{'x' * 5000}")
    assert assert_openai_error(one, 404) and len(one.content) < 1000


async def test_json_nested_past_the_parser_limit_has_the_documented_code(
    small: tuple[Proxy, LoopProbe], fake: FakeReasoningServer
) -> None:
    deep = '{"model": "chat", "messages": ' + "[" * 5_000 + "]" * 5_000 + "}"
    error = assert_openai_error(await _post(small[0].url, deep), 400)
    assert error["code"] == "invalid_json"
    assert fake.stats.requests == []

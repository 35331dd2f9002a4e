"""Real client libraries pointed at thinkstop by base URL alone: litellm, langchain-openai
(``bind_tools``) and the openai-agents SDK (its default model, on the Responses API),
through the proxy under uvicorn, in front of the fake reasoning server.

In each, the tool call the client gets is the model's own, made after a halted reasoning
(its arguments carry the answer the model held at the halt: 42, not the 41 it drifts to),
and the decision says it halted: in the reply where the client keeps it, in the proxy's
request log line where it does not (langchain).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from tests.fakes import FakeReasoningServer, Script, ScriptedToolCall
from tests.proxy.conftest import Proxy

PROMPT = [{"role": "user", "content": "How many fruits are in the basket? Look it up."}]
TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "Look a number up",
    "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                   "required": ["answer"]}}}]


def tool_script() -> Script:
    script = Script.overthinking(total=2000)
    script.tool_calls = [ScriptedToolCall("lookup")]
    return script


async def request_lines(proxy: Proxy) -> list[dict[str, Any]]:
    await asyncio.sleep(0.05)
    lines = [json.loads(line) for line in proxy.logs.take().splitlines()]
    return [line for line in lines if line["event"] == "request"]


# -- litellm ------------------------------------------------------------------------------
async def test_litellm_streamed_keeps_the_decision_and_the_tool_call(
    proxy: Proxy, fake: FakeReasoningServer
) -> None:
    import litellm

    for include_usage in (False, True):
        fake.reset(tool_script())
        extra = {"stream_options": {"include_usage": True}} if include_usage else {}
        stream = await litellm.acompletion(
            model="openai/chat", api_base=proxy.url, api_key="x", messages=PROMPT,
            tools=TOOLS, stream=True, **extra)
        chunks = [chunk async for chunk in stream]
        # litellm drops unknown top-level fields of a stream but copies the chunk's
        # provider_specific_fields onto its own chunk: the decision arrives as
        # chunk.thinkstop on one chunk near the end (which one depends on its buffering)
        decisions = [c.thinkstop for c in chunks if getattr(c, "thinkstop", None)]
        assert len(decisions) == 1 and decisions[0]["halted"] is True
        calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
        assert calls[0].function.name == "lookup"
        arguments = "".join(t.function.arguments or "" for t in calls)
        assert json.loads(arguments) == {"answer": "42"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices
                and c.choices[0].finish_reason][-1] == "tool_calls"


async def test_litellm_whole_reply_keeps_the_decision(
    proxy: Proxy, fake: FakeReasoningServer
) -> None:
    import litellm

    fake.reset(tool_script())
    reply = await litellm.acompletion(model="openai/chat", api_base=proxy.url, api_key="x",
                                      messages=PROMPT, tools=TOOLS)
    assert reply.thinkstop["halted"] is True  # a top-level field survives, not streamed
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"answer": "42"}


# -- langchain-openai ---------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_langchain_bind_tools_gets_the_models_own_call(
    proxy: Proxy, fake: FakeReasoningServer, stream: bool
) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def lookup(answer: str) -> str:
        """Look a number up."""
        return answer

    fake.reset(tool_script())
    proxy.logs.take()
    # A client of this test's own: langchain otherwise shares one across instances, bound
    # to the event loop of the first test that used it.
    http = openai.DefaultAsyncHttpxClient()
    model = ChatOpenAI(model="chat", base_url=proxy.url, api_key="x",  # type: ignore[arg-type]
                       max_retries=0, timeout=20, http_async_client=http).bind_tools([lookup])
    question = "How many fruits are in the basket? Look it up."
    try:
        if stream:
            message: Any = None
            async for piece in model.astream(question):
                message = piece if message is None else message + piece
        else:
            message = await model.ainvoke(question)
    finally:
        await http.aclose()
    assert message.tool_calls == [{"name": "lookup", "args": {"answer": "42"},
                                   "id": message.tool_calls[0]["id"], "type": "tool_call"}]
    # langchain keeps no unknown fields: the proxy's log line has the decision
    (line,) = await request_lines(proxy)
    assert line["halted"] is True and line["reason"] == "plateau" and line["status"] == "ok"
    assert fake.stats.tool_calls_sent[0][0] == "continuation"


# -- openai-agents ------------------------------------------------------------------------
@pytest.mark.parametrize("streamed", [False, True])
async def test_openai_agents_default_model_runs_a_function_tool(
    proxy: Proxy, fake: FakeReasoningServer, streamed: bool
) -> None:
    from agents import Agent, RunConfig, Runner, function_tool
    from agents.models.openai_provider import OpenAIProvider
    from agents.models.openai_responses import OpenAIResponsesModel

    looked_up: list[str] = []

    @function_tool
    def lookup(answer: str) -> str:
        """Look a number up."""
        looked_up.append(answer)
        return f"The basket holds {answer} fruits."

    fake.reset(tool_script())
    proxy.logs.take()
    async with openai.AsyncOpenAI(base_url=proxy.url, api_key="x", max_retries=0) as client:
        provider = OpenAIProvider(openai_client=client)  # the SDK's default: Responses API
        assert isinstance(provider.get_model("chat"), OpenAIResponsesModel)
        config = RunConfig(model_provider=provider, tracing_disabled=True)
        agent = Agent(name="counter", instructions="Use your tools.", model="chat",
                      tools=[lookup])
        question = "How many fruits are in the basket?"
        if streamed:
            run = Runner.run_streamed(agent, question, run_config=config, max_turns=4)
            async for _event in run.stream_events():
                pass
            final, items = run.final_output, run.new_items
        else:
            result = await Runner.run(agent, question, run_config=config, max_turns=4)
            final, items = result.final_output, result.new_items
    assert looked_up == ["42"]  # the model's own call, made after the halt
    assert final == "Final answer: 42."
    kinds = [type(item).__name__ for item in items]
    assert "ToolCallItem" in kinds and "ToolCallOutputItem" in kinds
    responses = [r for r in fake.stats.requests if r.kind == "main"]
    assert len(responses) == 2  # the call, then the answer with the tool's result
    assert responses[1].body["messages"][-1]["role"] == "tool"
    assert fake.stats.tool_calls_sent == [("continuation", "lookup", '{"answer": "42"}')]
    lines = await request_lines(proxy)
    assert [line["halted"] for line in lines] == [True, True]

"""Inject in each provider's shape (DESIGN §9): inputs built with the provider SDK's own types,
sent through /inject, and the output handed by that SDK's client to a stand-in on loopback
that refuses any request its request types do not accept (tests/support/providers.py)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import msgspec
import openai
import pytest
from anthropic.types import (
    AssistantMessageParam,
    Base64ImageSourceParam,
    CacheControlEphemeralParam,
    ImageBlockParam,
    MessageParam,
    TextBlockParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionDeveloperMessageParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseFunctionToolCallParam,
    ResponseInputImageParam,
    ResponseInputItemParam,
    ResponseInputTextParam,
)
from openai.types.responses.response_input_param import FunctionCallOutput

from charter.client.models import Injected
from tests.support.api import Api
from tests.support.providers import ProviderEndpoint

MODES = ["system_first", "system_append", "user_prepend"]
PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
EPHEMERAL = CacheControlEphemeralParam(type="ephemeral")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ProviderEndpoint]:
    with ProviderEndpoint() as running:
        yield running


async def _agent(api: Api, mode: str) -> tuple[str, str]:
    """A new agent in `mode`, and its composed text."""
    agent = "fmt-" + uuid.uuid4().hex[:10]
    await api.create(title="Charter", body="Ship it.", owner_agent_id=agent, injection_mode=mode)
    response = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    assert text
    return agent, text


async def _inject(api: Api, agent: str, body: dict[str, Any]) -> Injected:
    sent = copy.deepcopy(body)
    response = await api.client.post(f"/v1/realms/{api.realm}/agents/{agent}/inject", json=body)
    assert response.status_code == 200, response.text
    assert body == sent
    return msgspec.json.decode(response.content, type=Injected)


def _openai(endpoint: ProviderEndpoint) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=endpoint.openai_url, api_key="test", max_retries=0)


def _anthropic(endpoint: ProviderEndpoint) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=endpoint.url, api_key="test", max_retries=0)


# --- OpenAI Chat -------------------------------------------------------------------------


def _chat() -> list[ChatCompletionMessageParam]:
    return [
        ChatCompletionDeveloperMessageParam(role="developer", content="Answer in English."),
        ChatCompletionUserMessageParam(
            role="user",
            content=[
                ChatCompletionContentPartTextParam(type="text", text="What is in this image?"),
                ChatCompletionContentPartImageParam(
                    type="image_url",
                    image_url={"url": f"data:image/png;base64,{PIXEL}", "detail": "low"},
                ),
            ],
            name="op",
        ),
        ChatCompletionAssistantMessageParam(
            role="assistant",
            content=None,
            tool_calls=[
                ChatCompletionMessageFunctionToolCallParam(
                    id="call_1",
                    type="function",
                    function={"name": "look", "arguments": '{"zoom": 2}'},
                )
            ],
        ),
        ChatCompletionToolMessageParam(role="tool", tool_call_id="call_1", content="a cat"),
        ChatCompletionSystemMessageParam(role="system", content="Be brief."),
        ChatCompletionUserMessageParam(role="user", content="And now?"),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_openai_chat_is_a_valid_chat_request(
    api: Api, endpoint: ProviderEndpoint, mode: str
) -> None:
    agent, text = await _agent(api, mode)
    messages: list[Any] = _chat()
    injected = await _inject(api, agent, {"messages": messages})
    assert injected.format == "openai-chat"
    out = injected.kwargs()["messages"]
    if mode == "system_first":
        assert out == [{"role": "system", "content": text}, *messages]
    elif mode == "system_append":  # the developer message is the first system message
        assert out[0] == {**messages[0], "content": f"Answer in English.\n\n{text}"}
        assert out[1:] == messages[1:]
    else:
        parts = messages[1]["content"]
        assert out[1] == {**messages[1], "content": [{"type": "text", "text": text}, *parts]}
        assert [out[0], *out[2:]] == [messages[0], *messages[2:]]

    await _openai(endpoint).chat.completions.create(model="gpt-test", **injected.kwargs())
    assert endpoint.received[-1] == (
        "/v1/chat/completions",
        {"model": "gpt-test", **injected.kwargs()},
    )


# --- OpenAI Responses --------------------------------------------------------------------


def _items() -> list[ResponseInputItemParam]:
    return [
        EasyInputMessageParam(role="developer", content="Answer in English."),
        ResponseFunctionToolCallParam(
            type="function_call", call_id="call_0", name="warm_up", arguments="{}"
        ),
        FunctionCallOutput(type="function_call_output", call_id="call_0", output="warm"),
        EasyInputMessageParam(
            role="user",
            type="message",
            content=[
                ResponseInputTextParam(type="input_text", text="What is in this image?"),
                ResponseInputImageParam(
                    type="input_image", detail="low", image_url=f"data:image/png;base64,{PIXEL}"
                ),
            ],
        ),
        ResponseFunctionToolCallParam(
            type="function_call", call_id="call_1", name="look", arguments='{"zoom": 2}'
        ),
        FunctionCallOutput(type="function_call_output", call_id="call_1", output="a cat"),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("instructions", [None, "Be brief."])
async def test_openai_responses_is_a_valid_responses_request(
    api: Api, endpoint: ProviderEndpoint, mode: str, instructions: str | None
) -> None:
    agent, text = await _agent(api, mode)
    items: list[Any] = _items()
    body: dict[str, Any] = {"format": "openai-responses", "input": items}
    if instructions is not None:
        body["instructions"] = instructions
    injected = await _inject(api, agent, body)
    kwargs = injected.kwargs()
    if mode == "user_prepend":
        assert kwargs.get("instructions") == instructions
        first = {"type": "input_text", "text": text}
        assert kwargs["input"][3] == {**items[3], "content": [first, *items[3]["content"]]}
        assert kwargs["input"][:3] + kwargs["input"][4:] == items[:3] + items[4:]
    else:
        assert kwargs["input"] == items  # function calls and their outputs pass through
        if instructions is None:
            assert kwargs["instructions"] == text
        elif mode == "system_first":
            assert kwargs["instructions"] == f"{text}\n\n{instructions}"
        else:
            assert kwargs["instructions"] == f"{instructions}\n\n{text}"

    await _openai(endpoint).responses.create(model="gpt-test", **kwargs)
    assert endpoint.received[-1] == ("/v1/responses", {"model": "gpt-test", **kwargs})


async def test_a_string_input_takes_the_text_in_front(api: Api, endpoint: ProviderEndpoint) -> None:
    agent, text = await _agent(api, "user_prepend")
    injected = await _inject(api, agent, {"format": "openai-responses", "input": "Hello"})
    assert injected.kwargs() == {"input": f"{text}\n\nHello"}
    await _openai(endpoint).responses.create(model="gpt-test", **injected.kwargs())


async def test_the_stand_in_refuses_what_the_sdk_types_refuse(endpoint: ProviderEndpoint) -> None:
    """Round 1's user_prepend into Responses input: a `text` part, where `input_text` is due."""
    bad: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    with pytest.raises(openai.BadRequestError):
        await _openai(endpoint).responses.create(model="gpt-test", input=bad)
    with pytest.raises(anthropic.BadRequestError):
        await _anthropic(endpoint).messages.create(
            model="claude-test", max_tokens=8, messages=[{"role": "user", "content": bad}]
        )


# --- Anthropic Messages ------------------------------------------------------------------


def _system() -> list[TextBlockParam]:
    return [
        TextBlockParam(type="text", text="You review code."),
        TextBlockParam(type="text", text="The style guide: …", cache_control=EPHEMERAL),
    ]


def _messages() -> list[MessageParam]:
    return [
        UserMessageParam(
            role="user",
            content=[
                TextBlockParam(type="text", text="What is in this image?"),
                ImageBlockParam(
                    type="image",
                    source=Base64ImageSourceParam(
                        type="base64", media_type="image/png", data=PIXEL
                    ),
                    cache_control=EPHEMERAL,
                ),
            ],
        ),
        AssistantMessageParam(
            role="assistant",
            content=[ToolUseBlockParam(type="tool_use", id="tu_1", name="look", input={"z": 2})],
        ),
        UserMessageParam(
            role="user",
            content=[ToolResultBlockParam(type="tool_result", tool_use_id="tu_1", content="a cat")],
        ),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("system_kind", ["blocks", "string", "absent"])
async def test_anthropic_is_a_valid_messages_request(
    api: Api, endpoint: ProviderEndpoint, mode: str, system_kind: str
) -> None:
    agent, text = await _agent(api, mode)
    messages: list[Any] = _messages()
    system: Any = {"blocks": _system(), "string": "You review code.", "absent": None}[system_kind]
    body: dict[str, Any] = {"format": "anthropic", "messages": messages}
    if system is not None:
        body["system"] = system
    injected = await _inject(api, agent, body)
    kwargs = injected.kwargs()
    block = {"type": "text", "text": text}
    given = {"blocks": system, "string": [{"type": "text", "text": system}], "absent": []}
    if mode == "user_prepend":
        assert kwargs.get("system") == system
        first = messages[0]
        assert kwargs["messages"][0] == {**first, "content": [block, *first["content"]]}
        assert kwargs["messages"][1:] == messages[1:]
    else:
        assert kwargs["messages"] == messages
        blocks = given[system_kind]
        assert kwargs["system"] == (
            [block, *blocks] if mode == "system_first" else [*blocks, block]
        )

    await _anthropic(endpoint).messages.create(model="claude-test", max_tokens=64, **kwargs)
    assert endpoint.received[-1] == (
        "/v1/messages",
        {"model": "claude-test", "max_tokens": 64, **kwargs},
    )


async def test_tool_results_stay_first_in_the_user_message(
    api: Api, endpoint: ProviderEndpoint
) -> None:
    """A conversation whose first user message answers a prefilled tool use."""
    agent, text = await _agent(api, "user_prepend")
    messages: list[Any] = _messages()[1:]
    injected = await _inject(api, agent, {"format": "anthropic", "messages": messages})
    content = injected.kwargs()["messages"][1]["content"]
    assert content == [*messages[1]["content"], {"type": "text", "text": text}]
    await _anthropic(endpoint).messages.create(
        model="claude-test", max_tokens=64, **injected.kwargs()
    )


# --- every format: unchanged without text, refusals, the body limit ----------------------


async def test_an_empty_prompt_changes_nothing_in_any_format(api: Api) -> None:
    agent = "quiet-" + uuid.uuid4().hex[:8]
    await api.create(owner_agent_id=agent, status="paused")  # owns one node; none qualifies
    bodies: list[dict[str, Any]] = [
        {"messages": _chat()},
        {"format": "openai-responses", "input": _items(), "instructions": "Be brief."},
        {"format": "anthropic", "system": _system(), "messages": _messages()},
        {"format": "anthropic", "messages": _messages()},
    ]
    for body in bodies:
        injected = await _inject(api, agent, body)
        assert injected.kwargs() == {k: v for k, v in body.items() if k != "format"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"format": "anthropic", "input": "x", "messages": []}, "takes no input"),
        ({"format": "openai-chat", "messages": [], "system": "x"}, "takes no system"),
        ({"format": "openai-responses", "messages": []}, "takes no messages"),
        ({"format": "openai-responses"}, "needs input"),
        ({"format": "anthropic"}, "needs messages"),
        ({}, "needs messages"),
        ({"format": "gemini", "messages": []}, "enum"),
        ({"format": "openai-responses", "input": [{"role": 5}]}, "role"),
        ({"format": "anthropic", "messages": [{"content": "x"}]}, "role"),
        ({"format": "anthropic", "messages": [], "system": 5}, "system"),
        ({"format": "openai-responses", "input": 5}, "input"),
        ({"format": "openai-responses", "input": "x", "instructions": 5}, "instructions"),
    ],
)
async def test_a_body_that_does_not_fit_its_format_is_400(
    api: Api, body: dict[str, Any], detail: str
) -> None:
    agent, _ = await _agent(api, "system_first")
    response = await api.client.post(f"/v1/realms/{api.realm}/agents/{agent}/inject", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid-request"
    assert detail in response.text


async def test_deep_nesting_is_refused_in_every_field(api: Api) -> None:
    agent, _ = await _agent(api, "system_first")
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    for body in (
        {"format": "anthropic", "messages": [], "system": [{"type": "text", "x": deep}]},
        {"format": "openai-responses", "input": [{"type": "reasoning", "x": deep}]},
    ):
        response = await api.client.post(f"/v1/realms/{api.realm}/agents/{agent}/inject", json=body)
        assert response.status_code == 400, response.text
        assert "deeper" in response.json()["detail"]


async def test_inject_takes_a_long_history_with_an_image_other_routes_keep_their_limit(
    api: Api, endpoint: ProviderEndpoint
) -> None:
    agent, text = await _agent(api, "system_first")
    image = "A" * (400 * 1024)  # 400 KiB of base64, beyond the 256 KiB of every other route
    history: list[Any] = []
    for turn in range(200):
        history.append(UserMessageParam(role="user", content=f"question {turn} " + "q" * 900))
        history.append(
            AssistantMessageParam(role="assistant", content=f"answer {turn} " + "a" * 900)
        )
    history.append(
        UserMessageParam(
            role="user",
            content=[
                ImageBlockParam(
                    type="image",
                    source=Base64ImageSourceParam(
                        type="base64", media_type="image/png", data=image
                    ),
                )
            ],
        )
    )
    body: dict[str, Any] = {"format": "anthropic", "messages": history}
    injected = await _inject(api, agent, body)
    assert injected.kwargs()["system"] == [{"type": "text", "text": text}]
    await _anthropic(endpoint).messages.create(
        model="claude-test", max_tokens=8, **injected.kwargs()
    )

    elsewhere = await api.client.post(
        api.base, json={"level": "realm", "title": "T", "body": "B", "metadata": {"x": image}}
    )
    assert elsewhere.status_code == 413, elsewhere.text
    too_big = {"messages": [{"role": "user", "content": "x" * (4 * 1024 * 1024)}]}
    refused = await api.client.post(f"/v1/realms/{api.realm}/agents/{agent}/inject", json=too_big)
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "payload-too-large"

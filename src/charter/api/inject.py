"""POST …/inject: the agent's composed prompt placed into a chat request of the caller's.

A controller of its own because its body limit is its own (`max_inject_bytes`, app.py): a
long history with an image runs to megabytes, while every other route keeps the smaller one.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.params import JSONBody
from msgspec import UNSET, UnsetType
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, wire
from charter.api.agents import check_agent
from charter.api.auth import ACCESS
from charter.api.deps import RuntimeDep
from charter.api.idempotent import HEADER as IDEMPOTENCY_HEADER
from charter.api.idempotent import write_once
from charter.domain.access import Access
from charter.domain.injection import (
    ITEM_ROLE,
    MESSAGE_ROLE,
    InjectFormat,
    check_roles,
    inject_anthropic,
    inject_chat,
    inject_responses,
)
from charter.domain.metadata import check_json_depth
from charter.domain.tree import InjectionMode
from charter.errors import InvalidRequest
from charter.services import prompts

# The fields each format takes; `format` itself aside.
_FIELDS = {
    InjectFormat.OPENAI_CHAT: ("messages",),
    InjectFormat.OPENAI_RESPONSES: ("input", "instructions"),
    InjectFormat.ANTHROPIC: ("system", "messages"),
}
_REQUIRED = {
    InjectFormat.OPENAI_CHAT: "messages",
    InjectFormat.OPENAI_RESPONSES: "input",
    InjectFormat.ANTHROPIC: "messages",
}


def _check_shape(data: wire.InjectIn) -> None:
    allowed = _FIELDS[data.format]
    for name in ("messages", "input", "instructions", "system"):
        value = getattr(data, name)
        if value is UNSET:
            continue
        if name not in allowed:
            raise InvalidRequest(f"format {data.format.value} takes no {name}")
        check_json_depth(value, name)
    if getattr(data, _REQUIRED[data.format]) is UNSET:
        raise InvalidRequest(f"format {data.format.value} needs {_REQUIRED[data.format]}")
    if isinstance(data.messages, list):
        check_roles(data.messages, MESSAGE_ROLE, required=True)
    if isinstance(data.input, list):
        check_roles(data.input, ITEM_ROLE, required=False)


def place(data: wire.InjectIn, text: str, mode: InjectionMode) -> dict[str, Any]:
    """The answer's request fields: what `data` gave, with `text` placed per `mode`."""
    if data.format is InjectFormat.OPENAI_CHAT:
        assert not isinstance(data.messages, UnsetType)
        return {"messages": inject_chat(data.messages, text, mode)}
    if data.format is InjectFormat.OPENAI_RESPONSES:
        assert not isinstance(data.input, UnsetType)
        given = None if isinstance(data.instructions, UnsetType) else data.instructions
        items, instructions = inject_responses(data.input, given, text, mode)
        # An absent `instructions` stays absent unless the text went into it.
        kept = data.instructions if instructions is None else instructions
        return {"input": items, "instructions": kept}
    assert not isinstance(data.messages, UnsetType)
    given_system = None if isinstance(data.system, UnsetType) else data.system
    system, messages = inject_anthropic(given_system, data.messages, text, mode)
    return {"system": data.system if system is None else system, "messages": messages}


class InjectController(Controller):
    path = "/v1/realms/{realm_id:str}"
    tags = ["agents"]  # noqa: RUF012

    @post(
        "/agents/{agent_id:str}/inject",
        status_code=200,
        summary="Inject into a chat request (OpenAI Chat, OpenAI Responses, Anthropic)",
        operation_id="inject",
        description=(
            "Places the agent's composed prompt into the request given, per its injection mode, "
            "in the shape `format` names: openai-chat `{messages}` (the default), "
            "openai-responses `{input, instructions?}` or anthropic `{system?, messages}`. "
            "Answers the same fields with the text placed, and the composition id; everything "
            "else comes back unchanged. Changes nothing on the server."
        ),
        opt={ACCESS: Access.PROMPT},
    )
    async def inject(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        agent_id: params.AgentPath,
        data: JSONBody[wire.InjectIn],
        request: Request[Any, Any, Any],
    ) -> Response[wire.InjectOut]:
        data = params.strict_body(await request.json(), wire.InjectIn)
        check_agent(realm_id, agent_id)
        _check_shape(data)  # bad input is 400 before the prompt is read (404 for no agent)
        # Read the prompt before any write transaction opens: on SQLite that transaction holds
        # the one connection, and the read needs it too.
        document = prompts.decode(await runtime.prompts.current(realm_id, agent_id))
        placed = place(data, document.text, document.injection_mode)
        answer = Response(
            wire.InjectOut(
                composition_id=document.composition_id,
                injection_mode=document.injection_mode,
                format=data.format,
                **placed,
            )
        )

        async def run(_: AsyncConnection) -> Response[wire.InjectOut]:
            return answer

        # Inject changes nothing; only a keyed call is recorded, to replay its first answer.
        if request.headers.get(IDEMPOTENCY_HEADER) is None:
            return answer
        return await write_once(runtime, request, realm_id, run)

"""What handlers are given: the process runtime and who is calling."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from charter.cache.watch import Watch
from charter.domain.access import Caller
from charter.runtime import Runtime
from charter.services.writes import Actor


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    """The caller `charter.api.auth.authorize` left in the request's state."""
    caller: Caller = request.state.caller
    return caller


def _hold(request: Request[Any, Any, Any]) -> Watch:
    """The watch `charter.api.auth.AuthorizeMiddleware` holds for a stream route."""
    watch: Watch = request.state.hold
    return watch


def _actor(request: Request[Any, Any, Any]) -> Actor:
    caller = caller_of(request)
    return Actor(key_id=caller.key_id, name=caller.name)


DEPENDENCIES = {
    "runtime": Provide(_runtime, sync_to_thread=False),
    "caller": Provide(caller_of, sync_to_thread=False),
    "actor": Provide(_actor, sync_to_thread=False),
    "hold": Provide(_hold, sync_to_thread=False),
}

RuntimeDep = NamedDependency[Runtime]
CallerDep = NamedDependency[Caller]
ActorDep = NamedDependency[Actor]
HoldDep = NamedDependency[Watch]

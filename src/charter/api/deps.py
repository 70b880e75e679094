"""What handlers are given: the process runtime and who is calling."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from charter.runtime import Runtime
from charter.services.writes import Actor


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def _actor() -> Actor:
    # Authentication (API keys) replaces this with the caller's key id.
    return Actor(key_id="anonymous")


DEPENDENCIES = {
    "runtime": Provide(_runtime, sync_to_thread=False),
    "actor": Provide(_actor, sync_to_thread=False),
}

RuntimeDep = NamedDependency[Runtime]
ActorDep = NamedDependency[Actor]

"""What handlers are given: the database, the settings, and who is calling."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from charter.db.session import Database
from charter.services.writes import Actor
from charter.settings import Settings


@dataclass(frozen=True, slots=True)
class Runtime:
    """Live resources, opened by the app's lifespan; settings stay plain values."""

    settings: Settings
    db: Database


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

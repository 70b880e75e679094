"""The benchmark realm, written in-process as the app role (faster than 1 000 HTTP calls).

- `composer` owns 10 agent-level nodes at depth 4 whose ancestries make 20 layers:
  1 realm root, 3 teams, 6 sub-teams, 10 owned nodes (DESIGN §5: depth 4, 20 layers);
- 100 more agent nodes owned by other agents hang under the same sub-teams (noise);
- `cas-0` … `cas-999` each own one agent-level node under a `cas` team: the CAS targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.access import Role
from charter.domain.tree import Level
from charter.services import keys, writes
from charter.store import realms

ACTOR = writes.Actor("bench", "scripts/bench")
COMPOSER = "composer"
_PARAGRAPH = (
    "Answer in the user's language. Cite the source of every figure you quote, prefer primary "
    "sources, and say plainly when you do not know. Keep answers short unless asked for detail; "
    "never invent an API, a flag or a file name. "
)


@dataclass
class Realm:
    id: str
    composer_key: str = ""
    cas_ids: list[str] = field(default_factory=list)
    nodes: int = 0


def _new(level: Level, title: str, parent: str | None, owner: str | None) -> writes.NewDirective:
    return writes.NewDirective(
        level=level,
        title=title,
        body=_PARAGRAPH * 2,
        parent_id=parent,
        owner_agent_id=owner,
    )


async def seed(app_url: str, realm_id: str, cas_directives: int) -> Realm:
    db = Database.connect(app_url, pool_size=2)
    realm = Realm(realm_id)
    try:
        async with db.transaction() as conn:
            await realms.create(conn, realm_id, "Benchmark", utcnow())
            _, realm.composer_key = await keys.mint(
                conn, Role.AGENT, [realm_id], COMPOSER, "bench composer"
            )

        async def create(batch: list[tuple[str, writes.NewDirective]]) -> dict[str, str]:
            made: dict[str, str] = {}
            async with db.transaction(realm_id) as conn:
                for name, new in batch:
                    created = await writes.create(conn, realm_id, ACTOR, new, 16)
                    made[name] = created.id
            realm.nodes += len(made)
            return made

        root = (await create([("root", _new(Level.REALM, "House rules", None, None))]))["root"]
        teams = await create(
            [(f"t{i}", _new(Level.TEAM, f"Team {i}", root, None)) for i in range(3)]
        )
        subs = await create(
            [
                (f"t{i}{j}", _new(Level.TEAM, f"Team {i}.{j}", teams[f"t{i}"], None))
                for i in range(3)
                for j in range(2)
            ]
        )
        sub_ids = list(subs.values())
        await create(
            [
                (f"own{k}", _new(Level.AGENT, f"Task {k}", sub_ids[k % 6], COMPOSER))
                for k in range(10)
            ]
            + [
                (f"noise{k}", _new(Level.AGENT, f"Other {k}", sub_ids[k % 6], f"other-{k}"))
                for k in range(100)
            ]
        )
        cas_team = (await create([("cas", _new(Level.TEAM, "CAS targets", root, None))]))["cas"]
        for start in range(0, cas_directives, 100):
            made = await create(
                [
                    (f"cas{i}", _new(Level.AGENT, f"CAS {i}", cas_team, f"cas-{i}"))
                    for i in range(start, min(start + 100, cas_directives))
                ]
            )
            realm.cas_ids += list(made.values())
    finally:
        await db.dispose()
    return realm


async def analyze(owner_dsn: str) -> None:
    """Fresh planner statistics, as autovacuum would gather them on a live database."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()

"""Large realms in bulk SQL, as the schema owner: seconds for what the API would take hours.

A realm is a tree in four tiers: one realm root, `teams` teams under it, `subteams` teams
spread over those, and agent-level nodes spread over the lowest tier. Every node has
`versions` versions (the last one active) and one event per version (`directive.created`,
then `directive.version_created`), so the realm revision, the directives' revisions, the
versions and the outbox agree as if the API had written them; content hashes are the
canonical ones (`domain/versions.py`). The relay cursor starts at the realm revision: the
seeded history is not invalidation work for the server under test.

Row-level security is forced on the owner too, so the session sets the realm first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from charter.ids import new_directive_id

# Node i (1-based) of the tree; $1 the id prefix, $2 the number of nodes, $3 teams,
# $4 sub-teams, $5 the owner prefix, $6 how many distinct owners (0: one per agent node).
_NODES = """
CREATE TEMPORARY TABLE bench_nodes ON COMMIT DROP AS
SELECT i,
       $1::text || lpad(to_hex(i), 16, '0') AS id,
       CASE WHEN i = 1 THEN 'realm' WHEN i <= 1 + $3 + $4 THEN 'team' ELSE 'agent' END AS level,
       CASE
         WHEN i = 1 THEN NULL
         WHEN i <= 1 + $3 THEN $1::text || lpad(to_hex(1), 16, '0')
         WHEN i <= 1 + $3 + $4 THEN $1::text || lpad(to_hex(2 + (i - 2 - $3) % $3), 16, '0')
         WHEN $4 > 0 THEN $1::text || lpad(to_hex(2 + $3 + (i - 2 - $3 - $4) % $4), 16, '0')
         WHEN $3 > 0 THEN $1::text || lpad(to_hex(2 + (i - 2 - $3) % $3), 16, '0')
         ELSE $1::text || lpad(to_hex(1), 16, '0')
       END AS parent_id,
       CASE
         WHEN i <= 1 + $3 + $4 THEN NULL
         WHEN $6 = 0 THEN $5::text || (i - 2 - $3 - $4)
         ELSE $5::text || ((i - 2 - $3 - $4) % $6)
       END AS owner
FROM generate_series(1, $2::int) AS i
"""

_DIRECTIVES = """
INSERT INTO directives (realm_id, id, key, level, parent_id, status, priority, owner_agent_id,
                        injection_mode, metadata, revision, active_version, latest_version,
                        created_at, updated_at)
SELECT $1, n.id, NULL, n.level, n.parent_id, 'active', 'normal', n.owner, 'system_first',
       '{}'::jsonb, $2::int, $2::int, $2::int, now(), now()
FROM bench_nodes AS n
"""

# Titles and bodies need no JSON escaping, so the canonical content is plain concatenation.
_VERSIONS = """
INSERT INTO directive_versions (realm_id, directive_id, version, title, body, content_hash,
                                author, message, based_on, created_at)
SELECT $1, n.id, v, t.title, t.body,
       'sha256:' || encode(sha256(convert_to(
           '{"body":"' || t.body || '","title":"' || t.title || '"}', 'UTF8')), 'hex'),
       'bench', NULL, nullif(v - 1, 0), now()
FROM bench_nodes AS n
CROSS JOIN generate_series(1, $2::int) AS v
CROSS JOIN LATERAL (
    SELECT 'Node ' || n.i AS title, $3::text || ' Revision ' || v || '.' AS body
) AS t
"""

# One version number ($2) at a time, so the events arrive in seq order.
_EVENTS = """
INSERT INTO events (realm_id, seq, type, directive_id, revision, version, actor, message,
                    occurred_at, affected_agents, payload)
SELECT $1, ($2::int - 1)::bigint * $3::int + n.i,
       CASE WHEN $2::int = 1 THEN 'directive.created' ELSE 'directive.version_created' END,
       n.id, $2::int, $2::int, 'bench', NULL, now(),
       CASE WHEN n.owner IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(n.owner) END,
       CASE WHEN $2::int = 1 THEN jsonb_build_object('level', n.level, 'parent_id', n.parent_id)
            ELSE jsonb_build_object('version', $2::int, 'based_on', $2::int - 1) END
FROM bench_nodes AS n
ORDER BY n.i
"""

BODY = (
    "Answer in the user's language. Cite the source of every figure you quote, prefer primary "
    "sources, and say plainly when you do not know. Keep answers short unless asked for detail."
)


@dataclass(frozen=True)
class Shape:
    nodes: int
    teams: int
    subteams: int
    versions: int = 1
    owners: int = 0  # distinct agents owning the agent-level nodes; 0: one per node
    owner_prefix: str = "agent-"

    @property
    def agents(self) -> int:
        return self.nodes - 1 - self.teams - self.subteams


@dataclass(frozen=True)
class Seeded:
    realm: str
    shape: Shape
    prefix: str
    revision: int

    def node_id(self, i: int) -> str:
        """The id of node i (1 is the root; then teams, sub-teams, agent-level nodes)."""
        return f"{self.prefix}{i:016x}"

    def agent_node(self, j: int) -> str:
        """The id of the j-th agent-level node (0-based)."""
        return self.node_id(2 + self.shape.teams + self.shape.subteams + j)

    def owner(self, j: int) -> str:
        """The agent owning the j-th agent-level node."""
        owners = self.shape.owners
        return f"{self.shape.owner_prefix}{j % owners if owners else j}"


async def seed(owner_dsn: str, realm: str, shape: Shape) -> Seeded:
    """Write the realm; versions and events go in parallel, each in its own transaction."""
    if shape.agents < 1 or (shape.subteams and not shape.teams):
        raise ValueError(f"an impossible shape: {shape}")
    # A time-ordered head like every server-made id, then the node number: unique per realm.
    seeded = Seeded(realm, shape, new_directive_id()[:14], shape.nodes * shape.versions)
    # The realm's revision and its relay cursor come first and at their final value: a server
    # running meanwhile never takes the seeded events for undelivered work.
    async with _session(owner_dsn, seeded) as conn:
        await conn.execute(
            "INSERT INTO realms (id, name, revision, created_at) VALUES ($1, $2, $3, now())",
            realm,
            f"Benchmark, {shape.nodes} nodes",
            seeded.revision,
        )
        await conn.execute(
            "INSERT INTO relay_cursors (realm_id, delivered_seq) VALUES ($1, $2)",
            realm,
            seeded.revision,
        )
        await conn.execute(_DIRECTIVES, realm, shape.versions)

    async def versions() -> None:
        async with _session(owner_dsn, seeded) as conn:
            await conn.execute(_VERSIONS, realm, shape.versions, BODY)

    async def events() -> None:
        async with _session(owner_dsn, seeded) as conn:
            for number in range(1, shape.versions + 1):
                await conn.execute(_EVENTS, realm, number, shape.nodes)

    await asyncio.gather(versions(), events())
    conn = await asyncpg.connect(owner_dsn)
    try:
        # Statistics for the new rows at once, as autovacuum would gather them soon after.
        for table in ("realms", "directives", "directive_versions", "events"):
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()
    return seeded


@contextlib.asynccontextmanager
async def _session(owner_dsn: str, seeded: Seeded) -> AsyncIterator[asyncpg.Connection]:
    """A transaction as the owner, with the realm set and the tree's nodes in a temp table."""
    shape = seeded.shape
    conn = await asyncpg.connect(owner_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('charter.realm', $1, true)", seeded.realm)
            await conn.execute(
                _NODES,
                seeded.prefix,
                shape.nodes,
                shape.teams,
                shape.subteams,
                shape.owner_prefix,
                shape.owners,
            )
            yield conn
    finally:
        await conn.close()

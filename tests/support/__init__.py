"""Shared test machinery, imported as a library (conftest.py files hold only fixtures).

- `api`: the in-process driver: `Api` (one realm's requests through the Litestar test
  client), `ADMIN_KEY` (every app and server the tests start accepts it), `new_realm_id`.
- `checks`: problem responses, `snapshot`/`assert_unchanged`, `other_realm`, `chain`,
  `if_match(revision)`, `versions_of`, `realm_revision`.
- `refusals`: the bad-input helpers: `MARKER`, `assert_problem` (also: no directive text
  echoed), `assert_refused`, `send`, malformed and oversized bodies, marked trees.
- `streams`: `open_stream`, server-sent event routes driven in-process.
- `ports`: `free_port`.
- `servers`: `CharterServer` (`charter serve` as a process: `start`/`astart`, `stop`, `kill`,
  `http()`, `charter()`, `CharterServer.on_sqlite(dir)`), `charter_env`, `stop_group`,
  `kill_group`, `tail`, `StartServer` (the type of the live `start_server` fixture).
- `sqlite_server`: `charter serve` as an operator first runs it (the venv's `charter`, SQLite
  in a folder of its own, the admin key it prints): `sqlite_server`, `clean_env`, `CHARTER`.
- `live`: talking to server processes: `LiveApi`, `metrics`, `envelope`, `sse_events`.
- `redis`: `SHARED_REDIS_URL` (the suite's Redis db), `OwnRedis` (a redis-server of one's own).
- `postgres`: `OwnPostgres` (a PostgreSQL cluster of one's own, for the fault runs).
- `sdk`: the Python client in tests: `FAST_RETRY`, `new_realm`.
- `receiver`: `Receiver`, a webhook receiver on loopback (its own thread and loop) that
  verifies each delivery with `standardwebhooks`; it can be slow, failing or down.
- `webhooks`: `deliver(client)`, one pass of the in-process app's deliverer; `PUBLIC_URL`.

`tests/test_layout.py` keeps it so: no module imports a conftest, and conftest modules define
only fixtures and hooks.
"""

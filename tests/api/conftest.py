"""Fixtures shared by the bad-input modules: a tree whose text carries the marker, and a node
of another realm."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import Api
from tests.support.refusals import foreign_node, marked_root, marked_tree


@pytest.fixture
async def root(api: Api) -> dict[str, Any]:
    return await marked_root(api)


@pytest.fixture
async def tree(api: Api, root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return await marked_tree(api, root)


@pytest.fixture
async def foreign(client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    return await foreign_node(client)

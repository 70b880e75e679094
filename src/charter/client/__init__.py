"""The Python client for Charter's HTTP API: `Charter` (blocking) and `AsyncCharter`.

from charter.client import Charter

with Charter("http://127.0.0.1:8000", key, realm="ship") as charter:
    prompt = charter.prompt("coder-1")
"""

from charter.client._retry import RetryPolicy
from charter.client.aio import AsyncCharter
from charter.client.errors import (
    AlreadyExists,
    AuthError,
    CharterError,
    Conflict,
    CycleDetected,
    Forbidden,
    HasOpenChildren,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidHierarchy,
    InvalidInput,
    InvalidRequest,
    InvalidTransition,
    NotFound,
    PreconditionRequired,
    ProblemError,
    RateLimited,
    StaleRevision,
    TargetRefused,
    TransportError,
    Unauthenticated,
    Unavailable,
)
from charter.client.models import (
    CreatedWebhook,
    Delivery,
    Directive,
    Event,
    Forest,
    Injected,
    NewDirective,
    Patch,
    Prompt,
    TreeNode,
    Webhook,
)
from charter.client.sync import Charter
from charter.client.work import AsyncHolding, Holding

__all__ = [
    "AlreadyExists",
    "AsyncCharter",
    "AsyncHolding",
    "AuthError",
    "Charter",
    "CharterError",
    "Conflict",
    "CreatedWebhook",
    "CycleDetected",
    "Delivery",
    "Directive",
    "Event",
    "Forbidden",
    "Forest",
    "HasOpenChildren",
    "Holding",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "Injected",
    "InvalidHierarchy",
    "InvalidInput",
    "InvalidRequest",
    "InvalidTransition",
    "NewDirective",
    "NotFound",
    "Patch",
    "PreconditionRequired",
    "ProblemError",
    "Prompt",
    "RateLimited",
    "RetryPolicy",
    "StaleRevision",
    "TargetRefused",
    "TransportError",
    "TreeNode",
    "Unauthenticated",
    "Unavailable",
    "Webhook",
]

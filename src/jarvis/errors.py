"""One error tree for the whole service.

Each error is also a builtin (LookupError, ValueError, …) so domain code reads naturally;
the HTTP edge maps each class to a status and `{"error": {"code", "message"}}` once.
"""

from __future__ import annotations


class JarvisError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(JarvisError, ValueError):
    status_code = 422
    code = "invalid_request"


class NotFound(JarvisError, LookupError):
    status_code = 404
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Forbidden(JarvisError, PermissionError):
    """Known, but not allowed to do this (an ordinary user asking for an admin's task)."""

    status_code = 403
    code = "forbidden"


class Conflict(JarvisError):
    status_code = 409
    code = "conflict"


class Busy(Conflict):
    code = "busy"


class PayloadTooLarge(InvalidInput):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(JarvisError):
    status_code = 429
    code = "too_many_requests"


class EngineError(JarvisError, RuntimeError):
    """The model engine failed (a remote engine unreachable, a load failure, …)."""

    status_code = 502
    code = "engine_error"


class EngineRefused(EngineError):
    """A remote engine answered 429 or 5xx: busy or failing, where another server may answer."""


class EngineUnavailable(EngineError):
    status_code = 503
    code = "engine_unavailable"


class ModelLoadError(EngineError):
    status_code = 422
    code = "model_invalid"


class UpstreamError(JarvisError):
    """A registry or download server failed in a way the client cannot fix."""

    status_code = 502
    code = "upstream_error"


class UpstreamAuthError(JarvisError):
    """A registry wants credentials we do not have (private or gated repo)."""

    status_code = 403
    code = "upstream_auth"


class InsufficientStorage(JarvisError, OSError):
    status_code = 507
    code = "insufficient_storage"


class VerificationError(JarvisError):
    """Downloaded bytes are not what the registry said they would be."""

    status_code = 502
    code = "verification_failed"

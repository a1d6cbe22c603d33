"""Exceptions raised by the inferq client.

A request that inferq answered with an error (rejected, failed, expired) is
not an exception: it is a :class:`inferq.Result` whose ``error`` is set. The
exceptions here are for what happens on the client's side of Kafka.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import Result


class InferqError(Exception):
    """Base class of every exception raised by this package."""


class DecodeError(InferqError, ValueError):
    """Bytes or a dict that are not a valid inferq message (docs/wire-contract.md)."""


class EncodeError(InferqError, ValueError):
    """A request that cannot be written in the chosen encoding (e.g. a field
    outside the Avro schema, a non-string metadata value)."""


class RequestTimeout(InferqError, TimeoutError):
    """No result arrived within the timeout given to submit/infer/run_batch.

    The request may still be answered later; the client no longer waits for
    it (a late result is ignored)."""

    def __init__(self, custom_id: str, timeout: float):
        super().__init__(f"no result for {custom_id!r} within {timeout:g}s")
        self.custom_id = custom_id
        self.timeout = timeout


class DeliveryError(InferqError):
    """Kafka did not accept the request (the delivery report failed)."""

    def __init__(self, custom_id: str, reason: str):
        super().__init__(f"request {custom_id!r} was not delivered: {reason}")
        self.custom_id = custom_id
        self.reason = reason


class ClientClosed(InferqError):
    """The client was closed before a result arrived, or is used after close()."""


class ResultError(InferqError):
    """Raised by :meth:`inferq.Result.raise_for_error` for a result that is not
    ``succeeded``; ``result`` is the result, ``code`` its error code."""

    def __init__(self, result: "Result"):
        err = result.error
        code = err.code if err else result.status
        msg = err.message if err else f"status {result.status}"
        super().__init__(f"{result.custom_id}: {code}: {msg}")
        self.result = result
        self.code = code

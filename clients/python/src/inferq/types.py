"""Typed requests and results of the inferq wire contract (docs/wire-contract.md).

:class:`Request` is one OpenAI Batch API input line plus inferq's optional
fields; :class:`Result` is one output line plus the ``inferq`` extension
object. Both convert to and from plain dicts (``to_dict``/``from_dict``);
encoding to bytes lives in :mod:`inferq.codec`.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import DecodeError, ResultError

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
EMBEDDINGS_URL = "/v1/embeddings"

#: Request fields in the order of the contract and the Avro schema.
REQUEST_FIELDS = ("custom_id", "method", "url", "body", "reply_to", "priority", "deadline_ms",
                  "metadata", "prompt")
#: Result statuses of inferq.status.
STATUSES = ("succeeded", "failed", "rejected", "expired")
PRIORITIES = ("high", "normal", "low")

MAX_CUSTOM_ID_BYTES = 512


def new_custom_id(prefix: str = "py-") -> str:
    """A fresh unique custom_id (prefix + 32 hex digits)."""
    return prefix + uuid.uuid4().hex


def check_custom_id(custom_id: object) -> str:
    """Returns custom_id when it is usable (1..512 bytes of UTF-8, no NUL),
    else raises ValueError. A request without a usable custom_id cannot be
    answered (inferq dead-letters it), so the client refuses it up front."""
    if not isinstance(custom_id, str):
        raise ValueError(f"custom_id must be a string, got {type(custom_id).__name__}")
    try:
        n = len(custom_id.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise ValueError(f"custom_id is not valid UTF-8: {e}") from None
    if n == 0 or n > MAX_CUSTOM_ID_BYTES:
        raise ValueError(f"custom_id must be 1..{MAX_CUSTOM_ID_BYTES} bytes of UTF-8, got {n}")
    if "\0" in custom_id:
        raise ValueError("custom_id must not contain NUL")
    return custom_id


@dataclass
class Request:
    """One request. ``body`` is the OpenAI request body (``body["model"]`` is
    required); the other fields are inferq's optional ones and are left out
    of the message when ``None``.

    Build one directly, with :meth:`chat`, :meth:`embeddings`,
    :meth:`completions`, or from a batch file line with :meth:`from_dict`.
    """

    custom_id: str
    body: Dict[str, Any]
    url: str = CHAT_URL
    method: str = "POST"
    reply_to: Optional[str] = None
    priority: Optional[str] = None  # "high", "normal" or "low"
    deadline_ms: Optional[int] = None  # epoch milliseconds
    metadata: Optional[Dict[str, str]] = None  # echoed in the result, never sent to the model
    prompt: Optional[Dict[str, Any]] = None  # stored prompt template reference

    # ---- constructors

    @classmethod
    def chat(cls, model: str, messages: Sequence[Mapping[str, Any]], *,
             custom_id: Optional[str] = None, metadata: Optional[Mapping[str, str]] = None,
             priority: Optional[str] = None, deadline_ms: Optional[int] = None,
             deadline_in: Optional[float] = None, reply_to: Optional[str] = None,
             **params: Any) -> "Request":
        """A chat completion. ``params`` go into the body (max_tokens,
        temperature, ...). ``deadline_in`` is seconds from now (sets
        deadline_ms). ``custom_id`` defaults to a fresh unique id."""
        body: Dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
        body.update(params)
        return cls._make(body, CHAT_URL, custom_id, metadata, priority, deadline_ms, deadline_in,
                         reply_to)

    @classmethod
    def embeddings(cls, model: str, input: Union[str, Sequence[str]], *,
                   custom_id: Optional[str] = None, metadata: Optional[Mapping[str, str]] = None,
                   priority: Optional[str] = None, deadline_ms: Optional[int] = None,
                   deadline_in: Optional[float] = None, reply_to: Optional[str] = None,
                   **params: Any) -> "Request":
        """An embeddings request for one string or a list of strings."""
        body: Dict[str, Any] = {"model": model,
                                "input": input if isinstance(input, str) else list(input)}
        body.update(params)
        return cls._make(body, EMBEDDINGS_URL, custom_id, metadata, priority, deadline_ms,
                         deadline_in, reply_to)

    @classmethod
    def completions(cls, model: str, prompt: Union[str, Sequence[str]], *,
                    custom_id: Optional[str] = None, metadata: Optional[Mapping[str, str]] = None,
                    priority: Optional[str] = None, deadline_ms: Optional[int] = None,
                    deadline_in: Optional[float] = None, reply_to: Optional[str] = None,
                    **params: Any) -> "Request":
        """A legacy completions request (``prompt`` is body.prompt, the text
        for the model, not a prompt template)."""
        body: Dict[str, Any] = {"model": model,
                                "prompt": prompt if isinstance(prompt, str) else list(prompt)}
        body.update(params)
        return cls._make(body, COMPLETIONS_URL, custom_id, metadata, priority, deadline_ms,
                         deadline_in, reply_to)

    @classmethod
    def _make(cls, body: Dict[str, Any], url: str, custom_id: Optional[str],
              metadata: Optional[Mapping[str, str]], priority: Optional[str],
              deadline_ms: Optional[int], deadline_in: Optional[float],
              reply_to: Optional[str]) -> "Request":
        if deadline_in is not None:
            if deadline_ms is not None:
                raise ValueError("give deadline_ms or deadline_in, not both")
            deadline_ms = int((time.time() + deadline_in) * 1000)
        return cls(custom_id=custom_id if custom_id is not None else new_custom_id(), body=body,
                   url=url, metadata=dict(metadata) if metadata is not None else None,
                   priority=priority, deadline_ms=deadline_ms, reply_to=reply_to)

    # ---- accessors

    @property
    def model(self) -> Optional[str]:
        """body["model"]."""
        m = self.body.get("model") if isinstance(self.body, dict) else None
        return m if isinstance(m, str) else None

    @property
    def messages(self) -> Optional[List[Dict[str, Any]]]:
        """body["messages"] (chat), or None."""
        m = self.body.get("messages") if isinstance(self.body, dict) else None
        return m if isinstance(m, list) else None

    # ---- dicts

    def to_dict(self) -> Dict[str, Any]:
        """The JSON message as a dict, fields in contract order, optional
        fields left out when None."""
        d: Dict[str, Any] = {"custom_id": self.custom_id, "method": self.method, "url": self.url,
                             "body": self.body}
        for k in REQUEST_FIELDS[4:]:
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Request":
        """A request from a parsed JSON message (e.g. a batch file line).
        ``null`` means absent; a missing ``method`` means POST. Raises
        DecodeError for fields outside the contract, a missing or unusable
        custom_id, or a body that is not an object (the gateway checks the
        rest and answers with an error result)."""
        if not isinstance(d, Mapping):
            raise DecodeError(f"a request must be a JSON object, got {type(d).__name__}")
        unknown = [k for k in d if k not in REQUEST_FIELDS]
        if unknown:
            raise DecodeError(f"fields outside the inferq contract: {', '.join(sorted(unknown))}")
        try:
            check_custom_id(d.get("custom_id"))
        except ValueError as e:
            raise DecodeError(str(e)) from None
        body = d.get("body")
        if not isinstance(body, dict):
            raise DecodeError("body must be a JSON object")
        method = d.get("method")
        return cls(custom_id=d["custom_id"], body=body, url=d.get("url"),  # type: ignore[arg-type]
                   method="POST" if method is None else method,
                   reply_to=d.get("reply_to"), priority=d.get("priority"),
                   deadline_ms=d.get("deadline_ms"), metadata=d.get("metadata"),
                   prompt=d.get("prompt"))


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Response:
    """The upstream answer: HTTP status, the provider's request id (may be
    empty) and its response body (chat.completion, text_completion or list)."""

    status_code: int
    request_id: str
    body: Dict[str, Any]


@dataclass(frozen=True)
class ErrorDetail:
    """A result's error: a stable code (docs/wire-contract.md 3.2) and a
    sentence for people. Client-side outcomes use codes starting with
    ``client_`` (see :meth:`Result.client_error`)."""

    code: str
    message: str


def _dict(v: Any) -> Dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


@dataclass(frozen=True)
class Result:
    """One result. ``raw`` is the whole message as a dict (as inferq sent
    it); the other attributes are typed views of it. Unknown keys of the
    ``inferq`` object are kept in ``raw["inferq"]``."""

    id: str
    custom_id: str
    status: str  # succeeded, failed, rejected, expired
    response: Optional[Response]
    error: Optional[ErrorDetail]
    usage: Usage
    cost_usd: float
    timings_ms: Dict[str, int]
    model_requested: Optional[str]
    deployment: Optional[str]
    attempts: List[Dict[str, Any]]
    metadata: Dict[str, str]
    trace_id: Optional[str]
    raw: Dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the request succeeded (status succeeded, no error)."""
        return self.status == "succeeded" and self.error is None

    @property
    def content(self) -> Optional[str]:
        """The text of a chat or completions answer (first choice), else None."""
        if self.response is None:
            return None
        choices = self.response.body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        c = choices[0]
        msg = c.get("message")
        text = msg.get("content") if isinstance(msg, dict) else c.get("text")
        return text if isinstance(text, str) else None

    @property
    def embeddings(self) -> Optional[List[List[float]]]:
        """The vectors of an embeddings answer, in input order, else None."""
        if self.response is None or not isinstance(self.response.body.get("data"), list):
            return None
        data = [d for d in self.response.body["data"] if isinstance(d, dict)]
        data.sort(key=lambda d: _int(d.get("index")))
        return [d.get("embedding") for d in data]  # type: ignore[misc]

    def raise_for_error(self) -> "Result":
        """Returns self when ok, else raises ResultError."""
        if not self.ok:
            raise ResultError(self)
        return self

    def to_dict(self) -> Dict[str, Any]:
        """The JSON message as a dict (``raw``)."""
        return self.raw

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Result":
        """A result from a parsed JSON message. Raises DecodeError when it is
        not an object with a string custom_id; everything else is read
        leniently (missing keys get empty values) so that a newer gateway's
        results still parse."""
        if not isinstance(d, Mapping):
            raise DecodeError(f"a result must be a JSON object, got {type(d).__name__}")
        cid = d.get("custom_id")
        if not isinstance(cid, str):
            raise DecodeError("result has no string custom_id")
        ext_v = d.get("inferq")
        ext: Dict[str, Any] = ext_v if isinstance(ext_v, dict) else {}
        resp = d.get("response")
        response = None
        if isinstance(resp, dict):
            body = resp.get("body")
            response = Response(status_code=_int(resp.get("status_code")),
                                request_id=str(resp.get("request_id") or ""),
                                body=body if isinstance(body, dict) else {})
        err = d.get("error")
        error = None
        if isinstance(err, dict):
            error = ErrorDetail(code=str(err.get("code") or ""),
                                message=str(err.get("message") or ""))
        status = ext.get("status")
        if not isinstance(status, str):
            status = "succeeded" if error is None and response is not None else "failed"
        u = _dict(ext.get("usage"))
        usage = Usage(_int(u.get("prompt_tokens")), _int(u.get("completion_tokens")),
                      _int(u.get("total_tokens")))
        cost = ext.get("cost_usd")
        timings = _dict(ext.get("timings_ms"))
        att = ext.get("attempts")
        attempts: List[Dict[str, Any]] = [a for a in att if isinstance(a, dict)] \
            if isinstance(att, list) else []
        meta = _dict(ext.get("metadata"))
        tid = ext.get("trace_id")
        return cls(id=str(d.get("id") or ""), custom_id=cid, status=status, response=response,
                   error=error, usage=usage,
                   cost_usd=float(cost) if isinstance(cost, (int, float))
                   and not isinstance(cost, bool) else 0.0,
                   timings_ms=dict(timings), model_requested=ext.get("model_requested"),
                   deployment=ext.get("deployment"), attempts=list(attempts), metadata=dict(meta),
                   trace_id=tid if isinstance(tid, str) else None, raw=dict(d))

    @classmethod
    def client_error(cls, custom_id: str, code: str, message: str) -> "Result":
        """A result made on the client's side for a request that got no answer
        (run_batch yields these for timeouts and delivery failures): status
        ``failed``, ``error.code`` starting with ``client_``, ``id`` empty."""
        raw = {"id": "", "custom_id": custom_id, "response": None,
               "error": {"code": code, "message": message},
               "inferq": {"status": "failed", "client_side": True}}
        return cls.from_dict(raw)

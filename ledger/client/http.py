"""HTTP transport for the ledger API: token auth, JSON bodies, retries with exponential backoff.

Retrying a submission is safe because every payload carries its own ``id``: the server
answers a repeated envelope with the original receipt (``replayed: true``) instead of
writing it twice. So connection errors, timeouts and 502/503/504 (a proxy or server that
is restarting) are retried; every other answer is final.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from ledger.client import __version__

RETRY_STATUSES = frozenset({502, 503, 504})
DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF = 0.5  # seconds before the second attempt; doubles before each further one
MAX_DELAY = 30.0  # cap on one wait, including a server's Retry-After
DEFAULT_TIMEOUT = 60.0  # a bulk of 1,000 entries on a busy server can take seconds


class ClientError(Exception):
    """Base of the errors a command turns into a message and an exit code."""


class BadURL(ClientError):
    """The URL cannot be used at all (no scheme, unsupported scheme): a usage error."""


class Unreachable(ClientError):
    """No final answer after every attempt: connection refused, timeouts or 502/503/504."""

    def __init__(self, url: str, attempts: int, last_error: str) -> None:
        super().__init__(f"could not reach {url} after {attempts} attempt(s): {last_error}")
        self.url = url
        self.attempts = attempts
        self.last_error = last_error


class Rejected(ClientError):
    """The server answered with a final error; ``problem`` is its problem+json body, if any."""

    def __init__(self, status: int, problem: dict[str, Any] | None, text: str) -> None:
        title = (problem or {}).get("title") or text[:200] or "error"
        super().__init__(f"HTTP {status}: {title}")
        self.status = status
        self.problem = problem
        self.text = text


class LedgerClient:
    """A small synchronous client for one ledger server.

    ``base_url`` is the server root (``http://127.0.0.1:8000``); paths are joined to it.
    ``attempts`` counts every try, the first included: 1 means no retry.
    ``last_attempts`` tells how many tries the latest request took (a replayed answer after
    a retry is expected, not a conflict).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise BadURL(f"{base_url!r} is not an http:// or https:// URL")
        headers = {"User-Agent": f"magledger/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.attempts = attempts
        self.backoff = backoff
        self.last_attempts = 0
        self._sleep = sleep
        self._http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``/api/v1/entries/``."""
        return self.base_url + "/" + path.lstrip("/")

    def get(self, path: str) -> Any:
        """GET ``path`` and return the decoded JSON body (retried like a POST)."""
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path`` and return the decoded JSON answer.

        Raises Rejected on a final error answer and Unreachable when every attempt failed.
        """
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request with retries; see the module docstring for what is retried."""
        url = self.url(path)
        content = None
        headers = {}
        if body is not None:
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        delay = self.backoff
        last_error = ""
        for attempt in range(1, self.attempts + 1):
            self.last_attempts = attempt
            wait = delay
            try:
                response = self._http.request(method, url, content=content, headers=headers)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise BadURL(f"{url}: {exc}") from exc
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return _final(response)
                last_error = f"HTTP {response.status_code} {response.reason_phrase}"
                wait = max(delay, _retry_after(response))
            if attempt < self.attempts:
                self._sleep(min(wait, MAX_DELAY))
                delay *= 2
        raise Unreachable(url, self.attempts, last_error)


def _retry_after(response: httpx.Response) -> float:
    """Seconds from a Retry-After header given in seconds (dates are ignored)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return 0.0


def _final(response: httpx.Response) -> Any:
    """Decode a 2xx JSON answer, or raise Rejected with the problem+json body if there is one."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success and data is not None:
        return data
    text = response.text
    if response.is_redirect:
        text = f"redirected to {response.headers.get('Location', '?')}; use that URL. {text}"
    elif response.is_success:
        text = f"the answer is not JSON: {text[:200]}"
    problem = data if isinstance(data, dict) else None
    raise Rejected(response.status_code, problem, text)

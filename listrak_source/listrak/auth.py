"""OAuth2 client-credentials for Listrak as an ``httpx.Auth``.

The token request goes through the same flow (and so the same client, transport and
recorder) as the API call that needed it. Errors from the token endpoint are raised as
exceptions; the client's retry loop decides which of them deserve another try.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ListrakAuthError, ListrakProtocolError
from .retry import RetryableError

_UNAUTHORIZED_HINT = (
    "check that the integration is not paused, that it is an Email integration with the "
    "List, Contact and Segmentation areas enabled, and that this machine's IP address is on "
    "its allowlist"
)


class TokenEndpointUnavailable(RetryableError):
    """The token endpoint answered 429 or 5xx: worth retrying like any API call."""


@dataclass(slots=True)
class _Token:
    # repr=False keeps the token out of tracebacks and debug logs of this object.
    value: str = field(repr=False)
    renew_at: float


def renewal_margin(expires_in: float) -> float:
    """Renew early by 10% of the lifetime, at most a minute, so no request races expiry."""
    return min(expires_in * 0.1, 60.0)


class ClientCredentialsAuth(httpx.Auth):
    """Fetches, caches and renews a bearer token; renews once more when the API says 401."""

    requires_response_body = True

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        auth_url: str,
        clock: Callable[[], float] = time.monotonic,
        on_token: Callable[[], None] = lambda: None,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._auth_url = auth_url
        self._endpoint = f"POST {httpx.URL(auth_url).path}"
        self._clock = clock
        self._on_token = on_token
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(client_id={self._client_id!r}, auth_url={self._auth_url!r})"

    def invalidate(self) -> None:
        """Forget the cached token so the next request fetches a new one."""
        self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token
        if token is None or self._clock() >= token.renew_at:
            token = yield from self.token_flow()
        response = yield _authorize(request, token)
        if response.status_code != 401:
            return
        # Tokens can be revoked early, so one 401 earns a fresh token and one more try.
        token = yield from self.token_flow()
        response = yield _authorize(request, token)
        if response.status_code == 401:
            self._token = None
            raise ListrakAuthError(
                f"Listrak answered 401 to {request.method} {request.url.path} even with a "
                f"freshly issued token: {_UNAUTHORIZED_HINT}",
                status=401,
                code=_error_code(response),
            )

    def token_flow(self) -> Generator[httpx.Request, httpx.Response, _Token]:
        """Yield the token request, then cache and return the token; raise when it fails."""
        self._token = None
        started = self._clock()
        response = yield self._token_request()
        self._token = self._parse_token(response, started)
        self._on_token()
        return self._token

    def _token_request(self) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        return httpx.Request(
            "POST", self._auth_url, data=form, headers={"Accept": "application/json"}
        )

    def _parse_token(self, response: httpx.Response, started: float) -> _Token:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TokenEndpointUnavailable(
                f"Listrak's token endpoint answered {status} to {self._endpoint}",
                status=status,
                retry_after=response.headers.get("Retry-After"),
                date=response.headers.get("Date"),
            )
        body = _json_object(response)
        if status != 200:
            raise self._refused(status, body)
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token:
            raise ListrakProtocolError(
                f"Listrak's token endpoint ({self._endpoint}) returned no access_token",
                status=status,
            )
        lifetime = _lifetime(expires_in, self._endpoint)
        return _Token(value=token, renew_at=started + lifetime - renewal_margin(lifetime))

    def _refused(self, status: int, body: dict[str, Any]) -> ListrakAuthError:
        error = body.get("error")
        reason = error[:200] if isinstance(error, str) and error else f"HTTP {status}"
        if status in (400, 401):
            message = f"Listrak refused the client id/secret ({reason}) at {self._auth_url}"
        else:
            # A 404 or 405 here is almost always a mistyped auth_url, not bad credentials.
            message = (
                f"Listrak's token endpoint at {self._auth_url} answered {status}: check auth_url"
            )
        return ListrakAuthError(message, status=status, code=reason)


def _authorize(request: httpx.Request, token: _Token) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token.value}"
    return request


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# Listrak has answered 3599 and 900; without a value, assume the shorter.
_DEFAULT_LIFETIME = 900.0


def _lifetime(expires_in: object, endpoint: str) -> float:
    if expires_in is None:
        return _DEFAULT_LIFETIME
    seconds = -1.0
    # Be liberal: a number, or a number in a string, both mean seconds.
    if isinstance(expires_in, int | float | str) and not isinstance(expires_in, bool):
        try:
            seconds = float(expires_in)
        except ValueError:
            seconds = -1.0
    if seconds <= 0:
        raise ListrakProtocolError(
            f"Listrak's token endpoint ({endpoint}) returned expires_in={expires_in!r}"
        )
    return seconds


def _error_code(response: httpx.Response) -> str | None:
    code = _json_object(response).get("error")
    return code if isinstance(code, str) else None

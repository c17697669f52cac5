"""HTTP to a Prometheus server: authentication and TLS through ``requests``.

A server behind a proxy or with Prometheus' own ``--web.config.file`` asks for credentials:
:class:`Auth` holds a bearer token, a basic-auth user and password, and the CA that signed the
server's certificate, each secret read from a file (as Prometheus' own scrape configs take
``bearer_token_file`` and ``password_file``), so a saved model or a command line never holds
one. :class:`HttpClient` sends the GETs of :class:`~tsdiff.sources.prometheus.PrometheusSource`
with one pooled session and turns every failure into a :class:`~tsdiff.errors.SourceError` that
says what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tsdiff.errors import ParameterError, SourceError


@dataclass(frozen=True)
class Auth:
    """How to authenticate to a server: every field a path, or None.

    bearer_token_file
        A file holding the token sent as ``Authorization: Bearer <token>``.
    username, password_file
        Basic authentication: the user, and a file holding the password.
    ca_file
        A PEM file of the certificate authority that signed the server's certificate (for an
        ``https`` server whose certificate the system does not trust).
    """

    bearer_token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.bearer_token_file and self.username:
            raise ParameterError("give a bearer token or a basic-auth user, not both")
        if (self.username is None) != (self.password_file is None):
            raise ParameterError("basic authentication needs both a user and a password file")
        for name in ("bearer_token_file", "password_file", "ca_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ParameterError(f"{name.replace('_', ' ')} {path!r} is not a readable file")

    @property
    def empty(self) -> bool:
        return not any(asdict(self).values())

    def to_dict(self) -> dict[str, str]:
        """The paths (never a secret), for a saved model."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any] | None) -> Auth:
        return cls(**{k: str(v) for k, v in (state or {}).items() if v is not None})


def _secret(path: str, what: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ParameterError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not text:
        raise ParameterError(f"the {what} file {path} is empty")
    return text


class HttpClient:
    """GETs of JSON from one server, with :class:`Auth` and a timeout."""

    def __init__(self, url: str, timeout: float, auth: Auth | None = None) -> None:
        import requests

        self.url = url
        self.timeout = float(timeout)
        self.auth = auth or Auth()
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if self.auth.bearer_token_file:
            token = _secret(self.auth.bearer_token_file, "bearer token")
            self.session.headers["Authorization"] = f"Bearer {token}"
        if self.auth.username:
            self.session.auth = (self.auth.username, _secret(str(self.auth.password_file), "password"))
        # given with each request: requests lets REQUESTS_CA_BUNDLE override a session's own
        self.verify: str | bool = self.auth.ca_file or True

    def get_json(self, path: str, params: Mapping[str, str], query: str) -> dict[str, Any]:
        """The JSON body of ``GET url/path?params`` whose ``status`` is ``success``."""
        import requests

        try:
            answer = self.session.get(
                f"{self.url}{path}", params=dict(params), timeout=self.timeout, verify=self.verify
            )
        except requests.exceptions.SSLError as exc:
            raise SourceError(
                f"cannot verify the TLS certificate of {self.url} ({_first_line(exc)}); give the CA that "
                "signed it (--ca-file)",
                query=query,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"cannot reach {self.url}: {_first_line(exc)}", query=query) from None
        raw = answer.content
        if answer.status_code in (401, 403):
            given = self.auth.bearer_token_file or self.auth.username
            how = "check the credentials" if given else "it needs credentials"
            raise SourceError(
                f"{self.url} refused the query: HTTP {answer.status_code} {answer.reason}; {how} "
                "(--bearer-token-file, or --basic-auth-user with --basic-auth-password-file)",
                query=query,
            )
        if answer.status_code >= 400:
            problem = error_text(raw) or f"HTTP {answer.status_code} {answer.reason}"
            raise SourceError(f"{self.url} refused the query: {problem}", query=query)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise SourceError(f"{self.url} did not answer with JSON", query=query) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(f"{self.url}: {error_text(raw) or 'the query failed'}", query=query)
        return body


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def error_text(raw: bytes) -> str:
    """The error message of a Prometheus API answer (or the start of a body that is not JSON)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:200].decode("utf-8", "replace").strip()
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType")
        return f"{kind}: {body['error']}" if kind else str(body["error"])
    return ""

"""The OpenID Connect provider as Accord sees it: discovery, keys, token validation and the
authorization code flow with PKCE (authlib's OAuth 2 client; joserfc, authlib's JOSE
library, for signatures).

Blocking (httpx's sync client): callers run in worker threads (FastAPI runs sync
dependencies and routes there), never on the event loop.

Keys: the JWKS is cached for ``ACCORD_OIDC_JWKS_CACHE`` seconds; a token whose ``kid`` is
not in the cached set makes one refetch at once (a provider rotating its keys publishes
the new one before it signs with it), at most once every ``_REFETCH_MIN`` seconds so that
tokens with made-up key ids cannot make Accord hammer the provider.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from gateway.settings import Settings

__all__ = ["OidcError", "OidcProvider", "TokenRejected", "looks_like_jwt"]

_REFETCH_MIN = 10.0
_TIMEOUT = 10.0


class OidcError(Exception):
    """The provider could not be reached or answered something unusable."""


class TokenRejected(Exception):
    """A token failed validation; the message says why, for the person who sent it."""


@dataclass(frozen=True)
class _Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


class OidcProvider:
    """One configured provider (``ACCORD_OIDC_*``), shared by every request of a gateway."""

    def __init__(self, settings: Settings, *, http: httpx.Client | None = None) -> None:
        if not settings.oidc_issuer:
            raise ValueError("ACCORD_OIDC_ISSUER is not set")
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self._http = http or httpx.Client(timeout=_TIMEOUT)
        self._lock = threading.Lock()
        self._discovery: _Discovery | None = None
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._keys_at = 0.0
        self._refetched_at = 0.0

    def close(self) -> None:
        self._http.close()

    # -- discovery and keys -------------------------------------------------------------
    def discovery(self) -> _Discovery:
        with self._lock:
            if self._discovery is not None:
                return self._discovery
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._get_json(url)
        if doc.get("issuer") != self.issuer:
            raise OidcError(
                f"the provider's discovery document names issuer {doc.get('issuer')!r}, "
                f"not {self.issuer!r} (ACCORD_OIDC_ISSUER must match it exactly)"
            )
        try:
            found = _Discovery(
                issuer=doc["issuer"],
                authorization_endpoint=doc["authorization_endpoint"],
                token_endpoint=doc["token_endpoint"],
                jwks_uri=doc["jwks_uri"],
                end_session_endpoint=doc.get("end_session_endpoint"),
            )
        except KeyError as exc:
            raise OidcError(f"the provider's discovery document lacks {exc.args[0]!r}") from None
        with self._lock:
            self._discovery = found
        return found

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = self._http.get(url)
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the identity provider is unavailable ({url}: {exc})") from None
        if not isinstance(body, dict):
            raise OidcError(f"{url} did not answer a JSON object")
        return body

    def _fetch_keys(self) -> None:
        doc = self._get_json(self.discovery().jwks_uri)
        # Only signing keys of asymmetric types; a provider's JWKS never holds secrets.
        usable = [
            k
            for k in doc.get("keys", [])
            if isinstance(k, dict)
            and k.get("kty") in ("RSA", "EC", "OKP")
            and k.get("use", "sig") == "sig"
        ]
        try:
            keys = KeySet.import_key_set({"keys": usable})
        except JoseError as exc:
            raise OidcError(f"the provider's keys cannot be read: {exc}") from None
        with self._lock:
            self._keys = keys
            self._kids = {str(k.get("kid")) for k in usable if k.get("kid")}
            self._keys_at = time.monotonic()

    def _keys_for(self, kid: str | None) -> KeySet:
        now = time.monotonic()
        with self._lock:
            keys, kids, age = self._keys, self._kids, now - self._keys_at
            may_refetch = now - self._refetched_at >= _REFETCH_MIN
        if keys is None or age > self.settings.oidc_jwks_cache:
            self._fetch_keys()
        elif kid is not None and kid not in kids and may_refetch:
            with self._lock:
                self._refetched_at = now
            self._fetch_keys()
        with self._lock:
            assert self._keys is not None
            return self._keys

    # -- validation --------------------------------------------------------------------
    def validate(self, token: str, *, audience: str, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a JWT signed by the provider for ``audience``; TokenRejected with
        a clear reason otherwise (unsigned, unknown key, wrong issuer or audience,
        expired, not yet valid)."""
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRejected("the token is not signed (alg 'none' is never accepted)")
        if alg not in self.settings.oidc_algorithms:
            raise TokenRejected(
                f"the token is signed with {alg}, which is not accepted "
                f"(ACCORD_OIDC_ALGORITHMS: {', '.join(self.settings.oidc_algorithms)})"
            )
        kid = header.get("kid")
        keys = self._keys_for(kid if isinstance(kid, str) else None)
        if isinstance(kid, str) and kid not in self._kids:
            raise TokenRejected(
                f"the token is signed with key {kid!r}, which the provider does not publish"
            )
        try:
            decoded = jwt.decode(token, keys, algorithms=list(self.settings.oidc_algorithms))
        except BadSignatureError:
            raise TokenRejected("the token's signature does not verify") from None
        except JoseError as exc:
            raise TokenRejected(
                f"the token cannot be read: {exc.description or exc.error}"
            ) from None
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": audience},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        registry = jwt.JWTClaimsRegistry(leeway=self.settings.oidc_leeway, **options)
        claims: dict[str, Any] = dict(decoded.claims)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("the token has expired") from None
        except MissingClaimError as exc:
            raise TokenRejected(
                f"the token lacks the {exc.description or 'required'} claim"
            ) from None
        except InvalidClaimError as exc:
            name = (exc.description or "").split("'")[1] if "'" in (exc.description or "") else ""
            if name == "aud":
                raise TokenRejected(
                    f"the token is for audience {claims.get('aud')!r}, not Accord's ({audience!r})"
                ) from None
            if name == "iss":
                raise TokenRejected(
                    f"the token was issued by {claims.get('iss')!r}, not {self.issuer!r}"
                ) from None
            raise TokenRejected(f"the token is not valid: {exc.description}") from None
        except JoseError as exc:
            raise TokenRejected(f"the token is not valid: {exc.description or exc.error}") from None
        return claims

    def subject_of(self, claims: dict[str, Any]) -> str:
        """Accord's subject for a person: ``oidc:`` and their subject claim."""
        claim = self.settings.oidc_subject_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise TokenRejected(f"the token has no {claim!r} claim (ACCORD_OIDC_SUBJECT_CLAIM)")
        return f"oidc:{value}"

    # -- the authorization code flow ----------------------------------------------------
    def _client(self, redirect_uri: str) -> OAuth2Client:
        secret = self.settings.oidc_client_secret
        return OAuth2Client(
            client_id=self.settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=self.settings.oidc_scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=_TIMEOUT,
        )

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        disco = self.discovery()
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                disco.authorization_endpoint,
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
            )
        return str(url)

    def exchange_code(self, *, redirect_uri: str, code: str, code_verifier: str) -> dict[str, Any]:
        """Trade the code for tokens (the PKCE verifier proves this gateway started it)."""
        disco = self.discovery()
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(
                    disco.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except httpx.HTTPError as exc:
            raise OidcError(f"the identity provider is unavailable: {exc}") from None
        except OAuthError as exc:
            raise TokenRejected(f"the provider refused the login: {exc}") from None
        return dict(token)

    def logout_url(self, *, post_logout_redirect_uri: str, id_token_hint: str | None) -> str | None:
        """Where to send the browser so the provider ends its own session too."""
        end = self.discovery().end_session_endpoint
        if not end:
            return None
        params = {
            "client_id": self.settings.oidc_client_id or "",
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return str(httpx.URL(end, params=params))


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("not a JWT (expected three dot-separated parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TokenRejected("not a JWT (its header is not base64url JSON)") from None
    if not isinstance(header, dict):
        raise TokenRejected("not a JWT (its header is not a JSON object)")
    return header


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")

"""OpenID Connect for the management API: the Basic password carries an ID token.

The issuer's discovery document and signing keys (JWKS) are fetched asynchronously on start
and cached; the keys are fetched again when a token names a key id we do not know (the
issuer rotated its keys), at most every ``_MIN_REFRESH`` seconds, so a flood of forged key ids
cannot turn into a flood of requests to the issuer. A token is accepted when its signature
verifies with one of those keys, ``iss`` is the issuer, ``aud`` holds the client id, and it
has not expired; the username is ignored, as in the original.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import httpx
import jwt

from weron.log import get_logger
from weron.signaler.auth import AuthUnavailableError

log = get_logger(__name__)

_TIMEOUT: Final = 5.0
_MIN_REFRESH: Final = 30.0  # seconds between two JWKS fetches caused by unknown key ids
_MAX_KEYS_AGE: Final = 3600.0  # refetch the keys when they are older than this
_ASYMMETRIC: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_REQUIRED_CLAIMS: Final = ["exp", "iat", "iss", "aud", "sub"]


class InvalidTokenError(Exception):
    """Why a token was refused (for the log line; the client only sees 401)."""


class OIDCAuth:
    """Checks ID tokens issued by ``issuer`` for ``client_id``."""

    def __init__(self, issuer: str, client_id: str) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._http: httpx.AsyncClient | None = None
        self._jwks_uri = ""
        self._algorithms: list[str] = []
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._keys_fetched = 0.0
        self._refreshing: asyncio.Lock = asyncio.Lock()

    async def open(self) -> None:
        self._http = httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=True)
        url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            discovery = response.json()
            if not isinstance(discovery, dict):
                raise ValueError("the discovery document is not a JSON object")
            if discovery.get("issuer") != self._issuer:
                raise ValueError(
                    f"the discovery document names issuer {discovery.get('issuer')!r}, "
                    f"not {self._issuer!r}"
                )
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ValueError("the discovery document has no jwks_uri")
            self._jwks_uri = jwks_uri
            offered = discovery.get("id_token_signing_alg_values_supported") or ["RS256"]
            self._algorithms = sorted(_ASYMMETRIC.intersection(offered))
            if not self._algorithms:
                raise ValueError(f"the issuer signs ID tokens with none of {sorted(_ASYMMETRIC)}")
            await self._fetch_keys()
        except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
            await self.close()
            raise AuthUnavailableError(
                f"cannot use OIDC issuer {self._issuer}: {exc or type(exc).__name__}"
            ) from None
        log.info("Using OIDC for the management API", issuer=self._issuer)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _fetch_keys(self) -> None:
        assert self._http is not None
        response = await self._http.get(self._jwks_uri)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the JWKS document has no key list")
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in document["keys"]:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWKError:
                continue  # a key type we cannot use (or do not need): skip it
            keys[entry.get("kid")] = key
        self._keys = keys
        self._keys_fetched = time.monotonic()

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # an issuer with one key may omit kid
        return key

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        key = self._lookup(kid)
        stale = time.monotonic() - self._keys_fetched > _MAX_KEYS_AGE
        if key is None or stale:
            fetched = self._keys_fetched
            async with self._refreshing:
                # Whoever held the lock before us may have refreshed already.
                recent = time.monotonic() - self._keys_fetched < _MIN_REFRESH
                if self._keys_fetched == fetched and (stale or not recent):
                    try:
                        await self._fetch_keys()
                    except (httpx.HTTPError, ValueError) as exc:
                        log.warning("Could not refresh the OIDC signing keys", error=str(exc))
            key = self._lookup(kid)
        if key is None:
            raise InvalidTokenError(f"unknown signing key {kid!r}")
        return key

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidTokenError` saying what is wrong."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"not a JWT: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise InvalidTokenError(f"signing algorithm {algorithm!r} not accepted")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._client_id,
                issuer=self._issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(str(exc) or type(exc).__name__) from None
        return claims

    async def authorize(self, username: str, password: str) -> bool:
        try:
            claims = await self.verify(password)
        except InvalidTokenError as exc:
            log.info("Rejected ID token", issuer=self._issuer, reason=str(exc))
            return False
        log.debug("Accepted ID token", subject=claims.get("sub"))
        return True

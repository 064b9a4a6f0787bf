"""A real OpenID provider for the OIDC tests: the ``oidc-provider`` npm package on loopback,
and ID tokens obtained from it the way a person would, through its login and consent pages."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.processes import free_port

HERE = Path(__file__).resolve().parent / "oidc"
REDIRECT_URI = "http://127.0.0.1/callback"
_FORM = re.compile(r'action="([^"]+)"')


def install() -> str | None:
    """Install oidc-provider from package-lock.json if needed; why it cannot be used, or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed to run the OpenID provider (oidc-provider)"
    if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        return None
    try:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "npm ci of oidc-provider timed out (npm registry unreachable?)"
    if result.returncode != 0:
        return f"npm ci of oidc-provider failed (npm registry unreachable?): {result.stderr[-500:]}"
    return None


@dataclass
class OpenIDProviders:
    """One node process serving one provider (issuer with its own key) per port."""

    process: subprocess.Popen[str]
    issuers: list[str]

    @classmethod
    def start(cls, count: int) -> OpenIDProviders:
        ports = [str(free_port()) for _ in range(count)]
        process = subprocess.Popen(
            ["node", str(HERE / "provider.mjs"), *ports],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise RuntimeError(f"the OpenID provider exited with {process.wait()}")
        return cls(process, json.loads(line)["issuers"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def id_token(issuer: str, client_id: str, user: str = "alice") -> str:
    """Sign in as ``user`` through the provider's pages (authorization code flow with PKCE)."""
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    with httpx.Client(timeout=10) as http:
        discovery = http.get(f"{issuer}/.well-known/openid-configuration").json()
        response = http.get(
            discovery["authorization_endpoint"],
            params={
                "client_id": client_id,
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": REDIRECT_URI,
                "state": os.urandom(8).hex(),
                "nonce": os.urandom(8).hex(),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = None
        for _ in range(10):  # redirects, the login page, the consent page
            if response.is_redirect:
                location = urllib.parse.urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT_URI):
                    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
                    code = query["code"][0]
                    break
                response = http.get(location)
            elif response.status_code == 200 and (form := _FORM.search(response.text)):
                prompt = re.search(r'name="prompt" value="([^"]+)"', response.text)
                assert prompt is not None, response.text
                response = http.post(
                    urllib.parse.urljoin(str(response.url), form.group(1)),
                    data={"prompt": prompt.group(1), "login": user, "password": "any"},
                )
            else:
                raise AssertionError(f"unexpected answer {response.status_code}: {response.text}")
        assert code is not None, "the provider never redirected back with a code"
        tokens = http.post(
            discovery["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
                "client_secret": f"secret-{client_id}",
                "code_verifier": verifier,
            },
        )
        tokens.raise_for_status()
        token: str = tokens.json()["id_token"]
        return token

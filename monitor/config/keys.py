"""Token keys from the config: secrets read from the environment or files, never echoed."""

from __future__ import annotations

import os
from pathlib import Path

import jwt

from monitor.checks.jwt.settings import JwtSettings
from monitor.checks.tokens import mint, origin_of_url
from monitor.config.errors import Where
from monitor.config.schema import ServerConfig
from monitor.domain import TokenKey
from monitor.files import UnusableFile, read_secret

__all__ = ["token_key"]


def token_key(server: ServerConfig, base: Path) -> tuple[TokenKey | None, list[tuple[Where, str]]]:
    """Read a server's key material; problems never quote the secret."""
    j = server.block(JwtSettings)
    assert j is not None
    errors: list[tuple[Where, str]] = []
    hmac = j.algorithm.startswith("HS")
    material = ""
    if hmac:
        if (j.secret_env is None) == (j.secret_file is None):
            errors.append(((), f"{j.algorithm} needs exactly one of secret_env, secret_file"))
        elif j.secret_env is not None:
            material = os.environ.get(j.secret_env, "")
            if not material:
                # Named only when it looks like a name: a secret pasted here is not echoed.
                shown = j.secret_env if len(j.secret_env) <= 40 else "it names"
                errors.append((("secret_env",), f"environment variable {shown} is not set"))
        elif j.secret_file is not None:
            material = _read_secret(base / j.secret_file, ("secret_file",), errors)
        if j.private_key_file is not None:
            errors.append((("private_key_file",), f"{j.algorithm} uses a secret, not a key file"))
    else:
        if j.private_key_file is None:
            errors.append(((), f"{j.algorithm} needs private_key_file (a PEM private key)"))
        else:
            material = _read_secret(base / j.private_key_file, ("private_key_file",), errors)
            if material and "PRIVATE KEY" not in material:
                errors.append((("private_key_file",), "not a PEM private key"))
        if j.secret_env is not None or j.secret_file is not None:
            errors.append(((), f"{j.algorithm} signs with private_key_file, not a secret"))
        if not j.key_id:
            # Prosody fetches the public key by the kid ("'kid' claim is missing").
            errors.append((("key_id",), f"{j.algorithm} needs key_id (the kid of the key)"))
    jaas = server.kind == "jaas"
    if jaas:
        if j.algorithm != "RS256":
            errors.append((("algorithm",), "JaaS tokens are RS256"))
        if not j.app_id.startswith("vpaas-magic-cookie-"):
            errors.append((("app_id",), "a JaaS AppID starts with vpaas-magic-cookie-"))
        if not j.key_id or not j.key_id.startswith(f"{j.app_id}/"):
            errors.append((("key_id",), "JaaS needs key_id '<AppID>/<API key id>'"))
        if j.subject not in (None, j.app_id):
            errors.append((("subject",), "JaaS tokens have the AppID as their subject"))
    if errors:
        return None, errors
    key = TokenKey(
        algorithm=j.algorithm,
        key=material,
        key_id=j.key_id,
        issuer=j.app_id,
        audience=j.audience,
        subject=j.app_id if jaas else (j.subject or "*"),
        lifetime=j.lifetime,
        jaas=jaas,
        matrix=j.matrix == "full",
        settle=j.settle,
        matrix_interval=j.matrix_interval,
        guests_allowed=j.guests == "allowed",
        signalling_origins=tuple(
            dict.fromkeys(o for o in map(origin_of_url, j.signalling_origins) if o is not None)
        ),
        user_name=j.user_name,
        user_email=j.user_email,
        features=tuple(sorted(j.features.items())),
        extra=tuple(sorted(j.claims.items())),
    )
    try:
        mint(key, "*")  # a key that cannot sign fails here, not at every round
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        where: Where = ("private_key_file",) if not hmac else ()
        return None, [
            (where, f"cannot sign {j.algorithm} tokens with this key ({type(exc).__name__})")
        ]
    return key, []


def _read_secret(path: Path, where: Where, errors: list[tuple[Where, str]]) -> str:
    # The path is shown only when short: a secret pasted in its place is not echoed.
    shown = str(path) if len(path.name) <= 64 else "the file it names"
    try:
        # Regular files only, bounded; group- or world-readable ones are warned about.
        text = read_secret(path).decode("utf-8").strip()
    except FileNotFoundError:
        errors.append((where, f"no such file: {shown}"))
        return ""
    except UnusableFile as exc:
        errors.append((where, f"cannot read {shown}: {exc}"))
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        errors.append((where, f"cannot read {shown}: {type(exc).__name__}"))
        return ""
    if not text:
        errors.append((where, f"{shown} is empty"))
    return text

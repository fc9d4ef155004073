"""ACL constants and helpers (ZooDefs.Ids, DigestAuthenticationProvider)."""

from __future__ import annotations

import base64
import hashlib

from zkpy.proto.constants import Perms
from zkpy.proto.records import ACL, Id

__all__ = [
    "ANYONE_ID_UNSAFE",
    "AUTH_IDS",
    "CREATOR_ALL_ACL",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "digest_acl",
    "digest_id",
    "perm_string",
]

ANYONE_ID_UNSAFE = Id("world", "anyone")
AUTH_IDS = Id("auth", "")
OPEN_ACL_UNSAFE = (ACL(int(Perms.ALL), ANYONE_ID_UNSAFE),)
CREATOR_ALL_ACL = (ACL(int(Perms.ALL), AUTH_IDS),)
READ_ACL_UNSAFE = (ACL(int(Perms.READ), ANYONE_ID_UNSAFE),)


def digest_id(user: str, password: str) -> str:
    """"user:base64(sha1(user:password))", the id a digest ACL names."""
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


def digest_acl(user: str, password: str, perms: int = Perms.ALL) -> ACL:
    return ACL(int(perms), Id("digest", digest_id(user, password)))


def perm_string(perms: int) -> str:
    """Perms as ZKUtil.getPermString writes them: letters in the order c d r w a."""
    out = ""
    for bit, letter in ((Perms.CREATE, "c"), (Perms.DELETE, "d"), (Perms.READ, "r"),
                        (Perms.WRITE, "w"), (Perms.ADMIN, "a")):
        if perms & bit:
            out += letter
    return out

"""ACLs: the reference-counted ACL cache, the auth schemes and the permission check.

Mirrors ZooKeeper's ``ReferenceCountedACLCache`` (nodes store a long that names
an ACL list; -1 is OPEN_ACL_UNSAFE), the ``ip`` / ``digest`` authentication
providers, the ``world`` and ``auth`` pseudo-schemes, the super user, and
``ZooKeeperServer.checkACL``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zkpy.proto.errors import InvalidACLError, NoAuthError
from zkpy.proto.records import ACL, Id

PERM_READ, PERM_WRITE, PERM_CREATE, PERM_DELETE, PERM_ADMIN, PERM_ALL = 1, 2, 4, 8, 16, 31

OPEN_ACL_UNSAFE_ID = -1
ANYONE = Id("world", "anyone")
OPEN_ACL_UNSAFE: list[ACL] = [ACL(PERM_ALL, Id("world", "anyone"))]
READ_ACL_UNSAFE: list[ACL] = [ACL(PERM_READ, Id("world", "anyone"))]
CREATOR_ALL_ACL: list[ACL] = [ACL(PERM_ALL, Id("auth", ""))]

AclKey = tuple[tuple[int, str | None, str | None], ...]


def acl_key(acls: Sequence[ACL]) -> AclKey:
    if len(acls) == 1:  # the common case (one per create), without a generator
        a = acls[0]
        i = a.id
        return ((a.perms, i.scheme, i.id),)
    return tuple([(a.perms, a.id.scheme, a.id.id) for a in acls])


class AclCache:
    """Maps ACL lists to the long ids stored in nodes, counting references.

    The ids, their numbering from 1 and the OPEN_ACL_UNSAFE shortcut (-1) match
    Apache ZooKeeper's so that snapshots interchange."""

    __slots__ = ("_by_id", "_by_key", "_next_index", "_refs", "world_perms")

    def __init__(self) -> None:
        self._by_id: dict[int, list[ACL]] = {}
        self._by_key: dict[AclKey, int] = {}
        self._refs: dict[int, int] = {}
        self._next_index = 0
        # id -> the permissions world:anyone holds in that list, so that the ACL check of an
        # open node (the common case) is one dict lookup; -1 (OPEN_ACL_UNSAFE) holds them all.
        self.world_perms: dict[int, int] = {OPEN_ACL_UNSAFE_ID: PERM_ALL}

    def __len__(self) -> int:
        return len(self._by_key)

    def intern(self, acls: Sequence[ACL] | None) -> int:
        """The id for ``acls``, adding a reference (ZooKeeper's convertAcls)."""
        if acls is None:
            return OPEN_ACL_UNSAFE_ID
        key = acl_key(acls)
        aid = self._by_key.get(key)
        if aid is None:
            self._next_index += 1
            aid = self._next_index
            self._by_id[aid] = list(acls)
            self._by_key[key] = aid
            self.world_perms[aid] = _world_perms(acls)
        self._refs[aid] = self._refs.get(aid, 0) + 1
        return aid

    def lookup(self, aid: int) -> list[ACL]:
        if aid == OPEN_ACL_UNSAFE_ID:
            return OPEN_ACL_UNSAFE
        try:
            return self._by_id[aid]
        except KeyError:
            raise RuntimeError(f"Failed to fetch acls for {aid}") from None

    def add_usage(self, aid: int) -> None:
        if aid == OPEN_ACL_UNSAFE_ID or aid not in self._by_id:
            return
        self._refs[aid] = self._refs.get(aid, 0) + 1

    def add_usages(self, aid: int, count: int) -> None:
        """``count`` references at once (the bulk loader counts them per id while it loads)."""
        if count <= 0 or aid == OPEN_ACL_UNSAFE_ID or aid not in self._by_id:
            return
        self._refs[aid] = self._refs.get(aid, 0) + count

    def remove_usage(self, aid: int) -> None:
        if aid == OPEN_ACL_UNSAFE_ID or aid not in self._by_id:
            return
        n = self._refs.get(aid, 0) - 1
        if n <= 0:
            self._refs.pop(aid, None)
            acls = self._by_id.pop(aid)
            self._by_key.pop(acl_key(acls), None)
            self.world_perms.pop(aid, None)
        else:
            self._refs[aid] = n

    def entries(self) -> dict[int, list[ACL]]:
        """The id -> ACL list map, as a snapshot stores it."""
        return dict(self._by_id)

    def load(self, entries: dict[int, list[ACL]]) -> None:
        """Replace the cache with a snapshot's map; references are re-counted as nodes load."""
        self._by_id.clear()
        self._by_key.clear()
        self._refs.clear()
        self.world_perms = {OPEN_ACL_UNSAFE_ID: PERM_ALL}
        for aid, acls in entries.items():
            self._next_index = max(self._next_index, aid)
            self._by_id[aid] = list(acls)
            self._by_key[acl_key(acls)] = aid
            self._refs[aid] = 0
            self.world_perms[aid] = _world_perms(acls)

    def purge_unused(self) -> None:
        """Drop entries no node references (ZooKeeper does this after loading a snapshot)."""
        for aid in [a for a, n in self._refs.items() if n <= 0]:
            self._refs.pop(aid)
            acls = self._by_id.pop(aid)
            self._by_key.pop(acl_key(acls), None)
            self.world_perms.pop(aid, None)


def _world_perms(acls: Sequence[ACL]) -> int:
    perms = 0
    for a in acls:
        if a.id is not None and a.id.scheme == "world" and a.id.id == "anyone":
            perms |= a.perms
    return perms


# ---------------------------------------------------------------- authentication schemes


def java_split(s: str, sep: str) -> list[str]:
    """String.split(sep) of Java: trailing empty strings removed."""
    parts = s.split(sep)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""] and s:
        return []
    return parts


def generate_digest(id_password: str) -> str:
    """``user:base64(sha1(user:password))`` (DigestAuthenticationProvider.generateDigest)."""
    user = id_password.split(":", 1)[0]
    digest = hashlib.sha1(id_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(digest).decode('ascii')}"


def _ip_bytes(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def ip_acl_valid(expr: str) -> bool:
    parts = expr.split("/", 1)
    addr = _ip_bytes(parts[0])
    if addr is None:
        return False
    if len(parts) == 2:
        try:
            bits = int(parts[1])
        except ValueError:
            return False
        if bits < 0 or bits > len(addr) * 8:
            return False
    return True


def ip_matches(client_ip: str, expr: str) -> bool:
    """IPAuthenticationProvider.matches: ``addr[/bits]`` against the client's address."""
    parts = expr.split("/", 1)
    acl_addr = _ip_bytes(parts[0])
    if acl_addr is None:
        return False
    bits = len(acl_addr) * 8
    if len(parts) == 2:
        try:
            bits = int(parts[1])
        except ValueError:
            return False
        if bits < 0 or bits > len(acl_addr) * 8:
            return False
    remote = _ip_bytes(client_ip)
    if remote is None or len(remote) != len(acl_addr):
        return False
    a = int.from_bytes(acl_addr, "big")
    r = int.from_bytes(remote, "big")
    total = len(acl_addr) * 8
    mask = ((1 << bits) - 1) << (total - bits) if bits else 0
    return (a & mask) == (r & mask)


@dataclass(frozen=True, slots=True)
class AuthScheme:
    """A server authentication provider: id validity, ACL match and user name for whoAmI."""

    name: str

    def is_valid(self, acl_id: str) -> bool:
        if self.name == "digest":
            return len(java_split(acl_id, ":")) == 2
        if self.name == "ip":
            return ip_acl_valid(acl_id)
        return True

    def matches(self, auth_id: str, acl_id: str) -> bool:
        if self.name == "ip":
            return ip_matches(auth_id, acl_id)
        return auth_id == acl_id

    def user_name(self, auth_id: str) -> str:
        if self.name == "digest":
            return auth_id.split(":")[0]
        return auth_id


class AuthRegistry:
    """The authentication providers a server knows (ProviderRegistry): ip and digest."""

    def __init__(self, super_digest: str | None = None, skip_acl: bool = False) -> None:
        self.schemes: dict[str, AuthScheme] = {"ip": AuthScheme("ip"), "digest": AuthScheme("digest")}
        self.super_digest = super_digest
        self.skip_acl = skip_acl

    def authenticate(self, scheme: str, auth_data: bytes) -> list[Id] | None:
        """The ids an ``auth`` packet adds to a connection, or None when it fails."""
        if scheme != "digest":
            # ip auth is implicit (the client address); other schemes are not installed.
            return None
        digest = generate_digest(auth_data.decode("utf-8", "replace"))
        ids = []
        if self.super_digest is not None and digest == self.super_digest:
            ids.append(Id("super", ""))
        ids.append(Id("digest", digest))
        return ids

    def user_name(self, ident: Id) -> str:
        scheme = self.schemes.get(ident.scheme or "")
        if scheme is None:
            return ""
        return scheme.user_name(ident.id or "")

    def fixup_acl(self, path: str, auth_ids: Sequence[Id], acls: Sequence[ACL] | None) -> list[ACL]:
        """PrepRequestProcessor.fixupACL: dedupe, expand ``auth``, validate ids; InvalidACL otherwise."""
        uniq: list[ACL] = []
        seen: set[tuple[int, str | None, str | None]] = set()
        for a in acls or ():
            k = (a.perms, a.id.scheme if a.id else None, a.id.id if a.id else None)
            if k not in seen:
                seen.add(k)
                uniq.append(a)
        if not uniq:
            raise InvalidACLError(path)
        out: list[ACL] = []
        for a in uniq:
            ident = a.id
            if ident is None or ident.scheme is None:
                raise InvalidACLError(path)
            if ident.scheme == "world" and ident.id == "anyone":
                out.append(a)
            elif ident.scheme == "auth":
                valid = False
                for cid in auth_ids:
                    # Only schemes that authenticate a user count (digest); ip does not.
                    if cid.scheme in self.schemes and cid.scheme != "ip":
                        valid = True
                        out.append(ACL(a.perms, cid))
                if not valid:
                    raise InvalidACLError(path)
            else:
                scheme = self.schemes.get(ident.scheme)
                if scheme is None or ident.id is None or not scheme.is_valid(ident.id):
                    raise InvalidACLError(path)
                out.append(a)
        return out

    def check(self, acls: Iterable[ACL], perm: int, auth_ids: Sequence[Id]) -> None:
        """ZooKeeperServer.checkACL: raise NoAuthError unless ``auth_ids`` grant ``perm``."""
        if self.skip_acl:
            return
        granted = False
        empty = True
        for a in acls:
            empty = False
            if not a.perms & perm:
                continue
            ident = a.id
            if ident.scheme == "world" and ident.id == "anyone":
                return
            scheme = self.schemes.get(ident.scheme or "")
            if scheme is None:
                continue
            for cid in auth_ids:
                if cid.scheme == ident.scheme and scheme.matches(cid.id or "", ident.id or ""):
                    granted = True
                    break
            if granted:
                return
        if empty:
            return
        for cid in auth_ids:
            if cid.scheme == "super":
                return
        raise NoAuthError()

"""PostgreSQL names for an instance's database and roles, derived from OSB ids.

Names are a pure function of the id, so a broker that crashed halfway and is
retried (or a second broker) finds exactly the objects the first one began.
CF ids are GUIDs and keep a readable form (``cf_1b9c..._owner``); any other id
(quotes, unicode, 10 KB) is hashed, so no request text ever reaches an
identifier and every name stays under PostgreSQL's 63-byte limit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PREFIX = "cf_"


def id_token(ident: str) -> str:
    """A short, identifier-safe token for an OSB id; distinct ids give distinct tokens."""
    if _GUID.fullmatch(ident):
        return ident.replace("-", "_")
    # 'h' is not a hex digit, so a hashed token never equals a GUID's token.
    return "h" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass(frozen=True)
class InstanceNames:
    database: str
    owner_role: str
    reader_role: str

    @classmethod
    def for_instance(cls, instance_id: str) -> InstanceNames:
        base = PREFIX + id_token(instance_id)
        return cls(database=base, owner_role=base + "_owner", reader_role=base + "_reader")


def binding_role(binding_id: str) -> str:
    return PREFIX + "b_" + id_token(binding_id)

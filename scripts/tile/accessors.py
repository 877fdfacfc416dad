"""Ops Manager's `(( ... ))` accessors: finding them in strings, and the ones other parties define.

Ops Manager replaces ``(( accessor ))`` in a job type's manifest (and in the
selector's named manifests, and in templates' consumes) with values it knows.
Three kinds resolve outside this tile, so they are listed here: the CF tile's
properties (``..cf.*``, read by the errands instead of asking the operator for
the system domain or UAA credentials), and Ops Manager's built-ins (``$...``).
The tile's own accessors (``.properties.*`` and ``.<job type>.*``) are resolved
against tile.yml by scripts.tile.check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

ACCESSOR = re.compile(r"\(\(\s*(?P<expr>[^()]*?(?:\([^()]*\))?)\s*\)\)")
# BOSH variables, ((name)) or ((name.field)), resolved by the director's config server.
BOSH_VARIABLE = re.compile(r"\(\((?P<name>[A-Za-z0-9_/.-]+)\)\)")

# Properties of the CF tile (product name `cf`) that this tile reads. Only these are accepted,
# so a typo in one is caught here rather than by Ops Manager at install time.
CF_TILE = frozenset(
    {
        "..cf.cloud_controller.system_domain.value",
        "..cf.cloud_controller.apps_domain.value",
        "..cf.ha_proxy.skip_cert_verify.value",
        "..cf.uaa.system_services_credentials.identity",
        "..cf.uaa.system_services_credentials.password",
        "..cf.uaa.admin_client_credentials.identity",
        "..cf.uaa.admin_client_credentials.password",
        "..cf.deployment_name",
    }
)

# Ops Manager's built-ins.
BUILT_INS = frozenset(
    {
        "$ops_manager.ca_certificate",
        "$director.hostname",
        "$director.ca_public_key",
        "$self.deployment_name",
        "$self.service_network",
        "$self.uaa_client_name",
        "$self.uaa_client_secret",
    }
)

# Which fields a property of each type offers, besides `value` (Ops Manager's credential types).
FIELDS_BY_TYPE: dict[str, frozenset[str]] = {
    "simple_credentials": frozenset({"identity", "password"}),
    "salted_credentials": frozenset({"identity", "password", "salt"}),
    "rsa_cert_credentials": frozenset({"cert_pem", "private_key_pem"}),
    "rsa_pkey_credentials": frozenset(
        {"public_key_pem", "private_key_pem", "public_key_openssh", "public_key_fingerprint"}
    ),
}

# Ops Manager's property types (what a form field's `type` may be).
PROPERTY_TYPES = frozenset(
    {
        "boolean",
        "ca_certificate",
        "collection",
        "disk_type_dropdown",
        "domain",
        "dropdown_select",
        "email",
        "http_url",
        "integer",
        "ip_ranges",
        "ldap_url",
        "multi_select_options",
        "network_address",
        "network_address_list",
        "port",
        "rsa_cert_credentials",
        "rsa_pkey_credentials",
        "salted_credentials",
        "secret",
        "selector",
        "simple_credentials",
        "string",
        "text",
        "uuid",
        "vm_type_dropdown",
        "wildcard_domain",
    }
)

SELECTED_MANIFEST = re.compile(
    r"^(?P<path>.+)\.selected_option\.parsed_manifest\((?P<name>[A-Za-z0-9_-]+)\)$"
)


def fields_of(property_type: str) -> frozenset[str]:
    return FIELDS_BY_TYPE.get(property_type, frozenset({"value"}))


def find(text: str) -> Iterator[str]:
    """Each accessor expression in a string (without the parentheses)."""
    for match in ACCESSOR.finditer(text):
        yield match.group("expr").strip()

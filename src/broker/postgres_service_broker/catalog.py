"""The catalog the broker advertises (``GET /v2/catalog``) and the parameter schemas in it.

The schemas published here are also the ones requests are checked against, so
what `cf marketplace -e` shows an app developer is exactly what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postgres_service_broker.config import BrokerConfig, PlanConfig

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-04/schema#"


def instance_parameters_schema(allowed_extensions: list[str]) -> dict[str, Any]:
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "extensions": {
                "description": "PostgreSQL extensions to create in the database. "
                "On update, the full list wanted: missing ones are created, "
                "ones left out are dropped (refused while objects depend on them).",
                "type": "array",
                "items": {"type": "string", "enum": sorted(allowed_extensions)},
                "uniqueItems": True,
            }
        },
    }


def binding_parameters_schema() -> dict[str, Any]:
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "read_only": {
                "description": "Credentials that can read every table of the instance but change none.",
                "type": "boolean",
            }
        },
    }


@dataclass(frozen=True)
class Catalog:
    """The service offering and plans, with look-ups the OSB layer needs."""

    config: BrokerConfig

    @property
    def service_id(self) -> str:
        return self.config.catalog.id

    def plan(self, plan_id: str) -> PlanConfig | None:
        for plan in self.config.catalog.plans:
            if plan.id == plan_id:
                return plan
        return None

    @property
    def maintenance_info(self) -> dict[str, str]:
        return {
            "version": self.config.maintenance_version,
            "description": f"postgres-service {self.config.maintenance_version}",
        }

    def _plan_document(self, plan: PlanConfig) -> dict[str, Any]:
        instance_schema = instance_parameters_schema(self.config.allowed_extensions)
        metadata: dict[str, Any] = {
            "displayName": plan.display_name or plan.name,
            "bullets": plan.bullets,
            "connectionLimit": plan.connection_limit,
        }
        if plan.costs is not None:
            metadata["costs"] = plan.costs
        return {
            "id": plan.id,
            "name": plan.name,
            "description": plan.description,
            "free": plan.free,
            "bindable": True,
            "plan_updateable": True,
            "binding_rotatable": True,
            "metadata": metadata,
            "maintenance_info": self.maintenance_info,
            "schemas": {
                "service_instance": {
                    "create": {"parameters": instance_schema},
                    "update": {"parameters": instance_schema},
                },
                "service_binding": {"create": {"parameters": binding_parameters_schema()}},
            },
        }

    def document(self) -> dict[str, Any]:
        svc = self.config.catalog
        metadata: dict[str, Any] = {
            "displayName": svc.display_name,
            "longDescription": svc.long_description,
            "providerDisplayName": svc.provider_display_name,
            "documentationUrl": svc.documentation_url,
            "supportUrl": svc.support_url,
            "shareable": False,
        }
        if svc.image_url:
            metadata["imageUrl"] = svc.image_url
        return {
            "services": [
                {
                    "id": svc.id,
                    "name": svc.name,
                    "description": svc.description,
                    "tags": svc.tags,
                    "bindable": True,
                    "instances_retrievable": True,
                    "bindings_retrievable": True,
                    "allow_context_updates": True,
                    "plan_updateable": True,
                    "metadata": metadata,
                    "plans": [self._plan_document(p) for p in svc.plans],
                }
            ]
        }

"""The detector configuration that goes with the simulated site.

A real site configures the ``policy`` detector with what it agreed with its partners: which
CDS client may call which service, the FHIR servers each service may be sent to, the
approved ``jku`` URLs, the scopes a read-only service needs. The simulator writes the same
for its cast, so its normal traffic raises no finding and every policy incident does.
The mapping has the shape of ``detectors.StreamDetectorsConfig`` (``auditor simulate
--policy FILE`` writes it as JSON; the pipeline reads it with ``--detectors FILE``).
"""

from __future__ import annotations

from typing import Any

from pipelines.simulate.cast import EHRS, VENDOR_OF, VENDORS


def detector_config() -> dict[str, Any]:
    """The stream detectors' configuration for the simulated site (JSON-ready)."""
    clients: dict[str, Any] = {}
    for ehr in EHRS:
        # Discovery ({base}/cds-services) is called with a token too; it names no service.
        discovery = {f"{VENDOR_OF[service].base_url}/cds-services" for service in ehr.services}
        clients[ehr.iss] = {
            "allowed_services": sorted({*ehr.services, *discovery}),
            "approved_jku": [ehr.jwks_url] if ehr.send_jku and ehr.jwks_url else [],
        }
    services: dict[str, Any] = {}
    for vendor in VENDORS:
        for service in vendor.services:
            callers = [ehr for ehr in EHRS if service.id in ehr.services]
            services[service.id] = {
                "allowed_fhir_hosts": sorted({ehr.fhir_host for ehr in callers}),
                "read_only": True,
                "allow_wildcard": False,
                "allowed_scopes": sorted(service.scopes),
            }
    return {
        "policy": {
            "clients": clients,
            "flag_unknown_clients": True,
            "services": services,
            "min_tls_version": "1.2",
        }
    }

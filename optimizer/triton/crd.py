"""Offline validation of the custom resources among the manifests: kubernetes-validate knows only the core APIs, so
the KEDA ``ScaledObject`` (keda.sh/v1alpha1) and the Prometheus Operator ``PodMonitor`` (monitoring.coreos.com/v1)
are checked against trimmed copies of their CRDs' OpenAPI v3 schemas shipped in ``schemas/`` (JSON Schema draft 4,
as the API server reads them: ``300.0`` is no integer). Every property the CRD declares is listed, with
``additionalProperties: false`` where the CRD fixes them, so a misspelt or mistyped field is an error naming it."""

import json
from pathlib import Path
from typing import Dict, List

SCHEMAS = Path(__file__).resolve().parent / "schemas"
FILES = {"ScaledObject": "keda.sh_v1alpha1_scaledobject.json",
         "PodMonitor": "monitoring.coreos.com_v1_podmonitor.json"}  # kind -> schema (one version each)
KINDS = frozenset(FILES)


def schema(kind: str) -> Dict:
    """The vendored schema for ``kind`` (KeyError for a kind not in ``FILES``)."""
    return json.loads((SCHEMAS / FILES[kind]).read_text())


def validate(doc: Dict) -> List[str]:
    """Problems of one custom resource, each ``<path>: <message>`` (the path dotted from the document's root, empty
    for the root itself); the apiVersion must be the one vendored."""
    import jsonschema

    checker = jsonschema.Draft4Validator(schema(doc["kind"]))
    errors = sorted(checker.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]

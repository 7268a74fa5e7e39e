"""Evaluates Vexil flags through the official OpenFeature Python SDK and OFREP provider, as an application would.

Usage: ofrep_client.py URL SDK_KEY; prints one JSON object: each flag's details (value, variant, reason, error code).
"""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

url, key = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(url, headers_factory=lambda: {"Authorization": f"Bearer {key}"}))
client = api.get_client()
context = EvaluationContext(targeting_key="user-42", attributes={"plan": "pro"})


def details(result):
    return {
        "value": result.value,
        "variant": result.variant,
        "reason": str(result.reason),
        "error": result.error_code.value if result.error_code else None,
    }


print(
    json.dumps(
        {
            "boolean": details(client.get_boolean_details("ui.new_feature", False, context)),
            "number": details(client.get_integer_details("backend.rag_max_results", 0, context)),
            "string": details(client.get_string_details("ui.theme", "unset", context)),
            "object": details(client.get_object_details("ui.layout", {}, context)),
            "missing": details(client.get_boolean_details("ui.not_defined", True, context)),
        }
    )
)

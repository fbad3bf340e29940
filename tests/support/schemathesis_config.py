"""The schemathesis settings the API test and the reliability harness share.

Positive-data acceptance expects a schema-valid request to be answered 2xx or with a refusal
that depends on state or rights. A few refusals depend on facts no schema can state, and are
accepted for those operations only:

- Device Swap answers a number without records ``422 SERVICE_NOT_APPLICABLE`` (its spec's rule).
- Creating a SIM swap subscription refuses, as its spec prescribes, a sink host that does not
  resolve to public addresses (``400 INVALID_SINK``, a DNS fact), an expiry time that has passed
  (``400 INVALID_ARGUMENT``, a clock fact) and a number impossible in the numbering plan
  (``422 SERVICE_NOT_APPLICABLE``).
- KYC Tenure answers a number without a subscription in the records ``422
  SERVICE_NOT_APPLICABLE``; KYC Tenure and Number Recycling refuse a date after today ``400
  OUT_OF_RANGE`` (a clock fact).
- Registering a webhook refuses a URL whose host does not resolve to public addresses
  (``400 INVALID_ARGUMENT``, the SSRF guard's DNS fact); loopback runs have no public DNS.
"""

from __future__ import annotations

SCHEMATHESIS_TOML = (
    "[[operations]]\n"
    'include-path-regex = "^/device-swap/v1/"\n'
    "checks.positive_data_acceptance.expected-statuses = "
    '["200", "401", "403", "404", "409", "422", "429", "500", "503"]\n'
    "[[operations]]\n"
    'include-operation-id = "createSimSwapSubscription"\n'
    "checks.positive_data_acceptance.expected-statuses = "
    '["201", "400", "401", "403", "404", "409", "422", "429", "500", "503"]\n'
    "[[operations]]\n"
    'include-operation-id = "checkTenure"\n'
    "checks.positive_data_acceptance.expected-statuses = "
    '["200", "400", "401", "403", "404", "409", "422", "429", "500", "503"]\n'
    "[[operations]]\n"
    'include-operation-id = "checkNumberRecycling"\n'
    "checks.positive_data_acceptance.expected-statuses = "
    '["200", "400", "401", "403", "404", "409", "422", "429", "500", "503"]\n'
    "[[operations]]\n"
    'include-operation-id = "create_webhook_v1_webhooks_post"\n'
    "checks.positive_data_acceptance.expected-statuses = "
    '["200", "201", "400", "401", "403", "404", "409", "429", "500", "503"]\n'
)

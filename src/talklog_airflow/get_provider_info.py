"""What this package declares to Airflow (entry point ``apache_airflow_provider``).

Airflow's `ProvidersManager` reads it from the installed distribution: the connection types
below appear in the UI's connection form with their fields, and their hooks are registered.
Static data only: nothing is imported to answer it.
"""

from __future__ import annotations

from typing import Any

_TEXT = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}


def _field(label: str, schema: dict[str, Any] = _TEXT) -> dict[str, Any]:
    return {"label": label, "schema": schema}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "lineworks-talklog",
        "name": "LINE WORKS talk logs",
        "description": "LINE WORKS talks of sales staff into Salesforce as transcripts.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "LINE WORKS talk logs",
                "external-doc-url": "https://developers.worksmobile.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "LINE WORKS talk logs",
                "python-modules": [
                    "talklog_airflow.hooks.store",
                    "talklog_airflow.hooks.salesforce",
                    "talklog_airflow.hooks.lineworks",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "LINE WORKS talk logs",
                "python-modules": [
                    "talklog_airflow.operators.talklog",
                    "talklog_airflow.operators.imports",
                ],
            }
        ],
        "notifications": ["talklog_airflow.alerts.TalkLogAlertNotifier"],
        "connection-types": [
            {
                "hook-class-name": "talklog_airflow.hooks.store.MessageStoreHook",
                "hook-name": "LINE WORKS message store",
                "connection-type": "talklog_store",
                "conn-fields": {
                    "sqlalchemy_url": _field(
                        "SQLAlchemy URL (instead of host/login/database)", _SECRET
                    ),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "postgres.example.internal",
                        "port": "5432",
                        "sqlalchemy_url": "sqlite:////opt/airflow/var/store.db",
                    },
                },
            },
            {
                "hook-class-name": "talklog_airflow.hooks.salesforce.TalkLogSalesforceHook",
                "hook-name": "Salesforce (talk logs: My Domain token login)",
                "connection-type": "talklog_salesforce",
                "conn-fields": {
                    "consumer_key": {
                        "label": "Consumer Key (username-password flow)",
                        "schema": _TEXT,
                    },
                    "consumer_secret": _field("Consumer Secret", _SECRET),
                    "security_token": _field("Security Token", _SECRET),
                    "client_id": _field("Client ID (client credentials flow)"),
                    "ca_bundle": _field("CA bundle file to trust"),
                    "version": _field("API Version (default 66.0)"),
                    "token_url_mode": {
                        "label": "Token URL mode (instance or login)",
                        "schema": _TEXT,
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "Instance URL (My Domain)",
                        "login": "Client ID or Username",
                        "password": "Client Secret or Password",
                    },
                    "placeholders": {"host": "https://acme.my.salesforce.com"},
                },
            },
            {
                "hook-class-name": "talklog_airflow.hooks.lineworks.LineWorksHook",
                "hook-name": "LINE WORKS",
                "connection-type": "lineworks",
                "conn-fields": {
                    "service_account_id": _field("Service Account ID"),
                    # a textarea; Airflow masks it as a sensitive name (private_key)
                    "private_key": _field(
                        "Private Key (PEM)", {"type": ["string", "null"], "format": "multiline"}
                    ),
                    "domain_id": _field("Domain ID (group companies; optional)"),
                    "scopes": _field("Scopes (space separated)"),
                    "base_url": _field("API base URL (default https://www.worksapis.com/v1.0)"),
                    "auth_url": _field("Token URL (default auth.worksmobile.com)"),
                    "ca_bundle": _field("CA bundle file to trust"),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Client ID", "password": "Client Secret"},
                    "placeholders": {
                        "service_account_id": "xxxxx.serviceaccount@example.co.jp",
                        "scopes": "monitoring.read directory.read contact.read",
                    },
                },
            },
        ],
    }

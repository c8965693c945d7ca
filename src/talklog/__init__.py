"""LINE WORKS talk logs into Salesforce: the domain, free of Airflow."""

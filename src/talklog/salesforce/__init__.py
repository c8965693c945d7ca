"""Salesforce metadata (SFDX source) and the field contract the pipeline writes."""

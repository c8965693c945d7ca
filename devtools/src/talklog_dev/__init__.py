"""Development tools of lineworks-talklog, never installed in production.

`talklog_dev.emulator` (the Salesforce API emulator), `talklog_dev.synth` (the seeded synthetic
talk generator), `talklog_dev.demo` (`make demo`) and `talklog_dev.localstack` (`make airflow`).
"""

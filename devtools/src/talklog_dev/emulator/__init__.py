"""A local Salesforce API emulator: OAuth, REST, SOQL and Bulk API 2.0 over HTTPS on 127.0.0.1.

Start it with `python -m talklog_dev.emulator serve` (server: `talklog_dev.emulator.app`), or from
Python with `talklog_dev.emulator.process.run_emulator`.
"""

"""A local Salesforce API emulator: OAuth, REST, SOQL and Bulk API 2.0 over HTTPS on 127.0.0.1."""

from talklog.emulator.app import EmulatorConfig, EmulatorState, create_app

__all__ = ["EmulatorConfig", "EmulatorState", "create_app"]

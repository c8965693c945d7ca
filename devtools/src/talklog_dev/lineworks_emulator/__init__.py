"""A local LINE WORKS API 2.0 emulator (HTTPS on 127.0.0.1): service-account tokens, /users,
/contacts and the Monitoring API's message-content download, with data from the synthetic
generator. What it implements and how it differs from LINE WORKS: docs/lineworks-emulator.md.
"""

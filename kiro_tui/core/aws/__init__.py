"""Clients for AWS SSO OIDC, the Kiro social auth service, external IdPs and the CodeWhisperer /
Q account APIs. httpx only, no SDK, no Textual. Failures are `ServiceError`s with a
classification the refresh engine acts on."""

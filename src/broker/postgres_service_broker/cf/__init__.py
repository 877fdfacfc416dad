"""Clients for Cloud Foundry's control plane: UAA (tokens) and the Cloud Controller (v3 API).

The errands that register and deregister the broker use these instead of the
cf CLI, so the release carries no CLI and every call, status and error is
handled in code that tests can reach.
"""

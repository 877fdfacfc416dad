"""Service backends: what a service instance and a binding are made of.

The OSB layer talks to a backend only through the interface in `base`.
"""

"""PostgreSQL for Cloud Foundry: an Open Service Broker (v2.17) and its shared-cluster backend.

The product version lives here and nowhere else: the wheel, the catalog's
``maintenance_info`` and (later) the BOSH release all read it from this line.
"""

__version__ = "0.1.0"

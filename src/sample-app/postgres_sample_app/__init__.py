"""A small web app that proves a PostgreSQL binding works: it reads VCAP_SERVICES, writes and reads rows.

It runs unchanged against a user-provided service (``ups create``) and a
brokered one; the smoke tests and the HA tests use it too. Run it with
``python -m postgres_sample_app`` (what the manifest's command does) or embed
it: ``state_from_env(os.environ)`` then ``create_server(state, host, port)``.
"""

from postgres_sample_app.app import main, state_from_env
from postgres_sample_app.web import AppState, create_server

__all__ = ["AppState", "create_server", "main", "state_from_env"]

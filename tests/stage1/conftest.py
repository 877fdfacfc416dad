"""Stage 1 tests run apps in a CF space stand-in."""

from tests.sample_app.cf_stand_in import space  # noqa: F401 - a fixture, used by name

from tests.api.conftest import api  # noqa: F401 - the API fixture with two fake sources

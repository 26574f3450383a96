"""Chain fixtures for the contract tests (see tests/chain_fixtures.py).

When tests/conftest.py already provides them (``from tests.chain_fixtures import *``), they are not
defined a second time here: a second definition would start a second anvil.
"""

import tests.conftest as _root

if not hasattr(_root, "session_chain") and "tests.chain_fixtures" not in getattr(
    _root, "pytest_plugins", ()
):
    from tests.chain_fixtures import *  # noqa: F403

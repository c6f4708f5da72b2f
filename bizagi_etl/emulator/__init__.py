"""A faithful local Bizagi: OAuth2 token endpoint, OData data and metadata services,
deterministic data at any scale, a clock that moves the world, and switches for a bad day.

    from bizagi_etl.emulator import EmulatorConfig, EmulatorServer

    with EmulatorServer(EmulatorConfig(cases=5_000, token_ttl=2)) as bizagi:
        print(bizagi.base_url, bizagi.token_url)
        bizagi.advance(datetime.timedelta(days=1))  # cases arrive, close, change, vanish
"""

from bizagi_etl.emulator.config import EmulatorConfig, EmulatorConfigError
from bizagi_etl.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorConfigError", "EmulatorServer"]

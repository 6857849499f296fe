"""`python -m demo_agent`: start the agent with settings from the environment."""

from __future__ import annotations

import sys

import uvicorn

from demo_agent.app import create_app
from demo_agent.faults import FaultDefaultsError
from demo_agent.settings import Settings, SettingsError
from demo_agent.telemetry import build_log_shipper, build_tracer_provider, configure_logging
from lab.listen import listen_problem


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.stderr.write(f"demo_agent: {error}\n")
        return 2
    problem = listen_problem(settings.host, settings.port, "AGENT_HOST", "AGENT_PORT")
    if problem is not None:
        sys.stderr.write(f"demo_agent: {problem}\n")
        return 2
    log_shipper = build_log_shipper(settings)
    configure_logging(settings, log_shipper)
    try:
        app = create_app(settings, tracer_provider=build_tracer_provider(settings),
                         log_shipper=log_shipper)
    except FaultDefaultsError as error:
        # Plain text on stderr, like every other setting the agent refuses at start.
        sys.stderr.write(f"demo_agent: {error}\n")
        return 2
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m alert_sink``: serve the sink on ALERT_SINK_HOST:ALERT_SINK_PORT."""

import sys

import structlog
import uvicorn

from alert_sink.app import create_app
from alert_sink.logs import configure_logging
from alert_sink.settings import SettingsError, load_settings
from lab.listen import listen_problem


def main() -> int:
    configure_logging()
    log = structlog.get_logger("alert_sink")
    try:
        settings = load_settings()
    except SettingsError as error:
        log.error("settings_invalid", error=str(error))
        return 2
    configure_logging(settings.log_level)
    problem = listen_problem(settings.host, settings.port, "ALERT_SINK_HOST", "ALERT_SINK_PORT")
    if problem is not None:
        log.error("cannot_listen", error=problem)
        return 2
    log.info(
        "alert_sink_starting",
        host=settings.host,
        port=settings.port,
        max_notifications=settings.max_notifications,
        runbooks_dir=str(settings.runbooks_dir),
    )
    if not settings.runbooks_dir.is_dir():
        log.warning(
            "runbooks_dir_missing",
            runbooks_dir=str(settings.runbooks_dir),
            fix="set ALERT_SINK_RUNBOOKS_DIR to the repository's docs/runbooks",
        )
    # uvicorn's loggers propagate to the JSON handler; its access log is off because
    # every webhook call already produces a notification or rejection event.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

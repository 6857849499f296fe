"""The sink's HTML page: every kept notification, grouped by receiver, newest first.

Everything shown comes from outside (labels, annotations, receiver names), so every
value goes through ``html.escape``; the page has no script.
"""

from collections.abc import Collection, Iterable
from datetime import datetime
from html import escape

from alert_sink.store import Notification, ReceivedAlert

REFRESH_SECONDS = 5

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h2 { border-bottom: 2px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }
article { border-left: 6px solid #999; padding: .3rem .8rem; margin: .8rem 0; }
article.firing { border-color: #c62828; background: #fdecea; }
article.resolved { border-color: #2e7d32; background: #edf7ee; }
.status { font-weight: bold; letter-spacing: .05em; }
.firing .status, td.firing { color: #b71c1c; }
.resolved .status, td.resolved { color: #1b5e20; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #ddd;
         vertical-align: top; }
code { font-size: .85rem; }
"""


def _labels(labels: dict[str, str]) -> str:
    pairs = (f"{escape(key)}={escape(value)}" for key, value in sorted(labels.items()))
    return "<code>" + ", ".join(pairs) + "</code>"


def _time(moment: datetime | None) -> str:
    return escape(moment.isoformat(timespec="seconds")) if moment else "still firing"


def _alert_name(name: str, runbook_names: Collection[str]) -> str:
    """The alert's name, linked to its runbook when the sink has one.

    The link is relative to this page (served at /), so it opens on whatever host port the
    sink is reached through, unlike an absolute runbook_url.
    """
    if name in runbook_names:
        return f'<a href="runbooks/{escape(name)}">{escape(name)}</a>'
    return escape(name)


def _alert_row(alert: ReceivedAlert, runbook_names: Collection[str]) -> str:
    status = escape(alert.status)
    summary = alert.annotations.get("summary", "")
    description = alert.annotations.get("description", "")
    return (
        f'<tr><td class="{status}">{status.upper()}</td>'
        f"<td>{_alert_name(alert.name, runbook_names)}</td>"
        f"<td>{escape(alert.labels.get('severity', ''))}</td>"
        f"<td>{escape(summary)}<br><small>{escape(description)}</small></td>"
        f"<td>{_time(alert.starts_at)}</td><td>{_time(alert.ends_at)}</td>"
        f"<td>{_labels(alert.labels)}</td></tr>"
    )


def _notification(notification: Notification, runbook_names: Collection[str]) -> str:
    status = escape(notification.status)
    names = escape(", ".join(notification.alert_names))
    rows = "".join(_alert_row(alert, runbook_names) for alert in notification.alerts)
    return (
        f'<article class="{status}">'
        f'<h3><span class="status">{status.upper()}</span> {names}</h3>'
        f"<p>Received {_time(notification.received_at)} &middot; "
        f"group {_labels(notification.group_labels)}</p>"
        "<table><tr><th>Status</th><th>Alert</th><th>Severity</th><th>Summary</th>"
        f"<th>Started</th><th>Ended</th><th>Labels</th></tr>{rows}</table></article>"
    )


def _by_receiver(notifications: Iterable[Notification]) -> dict[str, list[Notification]]:
    groups: dict[str, list[Notification]] = {}
    for notification in notifications:
        groups.setdefault(notification.receiver, []).append(notification)
    return dict(sorted(groups.items()))


def render_page(
    notifications: Iterable[Notification],
    capacity: int,
    runbook_names: Collection[str] = frozenset(),
) -> str:
    """The whole page for ``notifications`` given newest first.

    Alerts named in ``runbook_names`` link to their runbook page.
    """
    groups = _by_receiver(notifications)
    count = sum(len(group) for group in groups.values())
    if groups:
        body = "".join(
            f"<section><h2>{escape(receiver)} <small>({len(group)})</small></h2>"
            + "".join(_notification(notification, runbook_names) for notification in group)
            + "</section>"
            for receiver, group in groups.items()
        )
    else:
        body = (
            "<p>No notification yet. Trip an alert with "
            "<code>python -m loadgen run HighErrorRate --host http://127.0.0.1:8000</code> "
            "and watch it arrive here.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>Alert sink</title><style>{_STYLE}</style></head><body>"
        "<h1>Alert sink</h1>"
        f"<p>{count} notifications kept (at most {capacity}), grouped by Alertmanager "
        f"receiver, newest first. The page reloads every {REFRESH_SECONDS} s; the same "
        'data as JSON: <a href="/api/notifications">/api/notifications</a>; what to do '
        'about each alert: <a href="runbooks">runbooks</a>.</p>'
        f"{body}</body></html>"
    )

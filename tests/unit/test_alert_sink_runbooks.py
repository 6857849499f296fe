"""The sink's runbook pages through its ASGI app: rendering, listing, links, refused names.

httpx folds a literal `..` out of a URL before sending it, so the traversal cases send it
percent-encoded: the app then sees the same decoded path (`/runbooks/../../x`) that a raw
`..` from a client that does not normalise paths produces.
"""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alert_sink.app import create_app
from alert_sink.settings import SettingsError, SinkSettings, load_settings
from tests.unit.test_alert_sink import firing_payload

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "TOP SECRET, outside the runbooks folder"
REPOSITORY_RUNBOOKS = [
    "HighErrorRate",
    "HighLLMCosts",
    "HighLatency",
    "HighMemoryUsage",
    "LowAccuracy",
    "LowCacheHitRate",
    "PodDown",
    "RedisDown",
    "ToolFailureSpike",
]

pytestmark = pytest.mark.anyio

Sink = httpx.AsyncClient


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def runbooks_dir(tmp_path: Path) -> Path:
    """A runbooks folder with one runbook, a file that is no alert, and a secret beside it."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "HighErrorRate.md").write_text("# HighErrorRate\n\nToo many 5xx.\n")
    (folder / "not-an-alert.md").write_text("# Not an alert\n")
    (folder / "notes.txt").write_text("not markdown\n")
    (tmp_path / "secret.md").write_text(SECRET)
    (tmp_path / "passwd").write_text(SECRET)
    return folder


def sink_client(settings: SinkSettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://alert-sink")


@pytest.fixture
async def repository_sink() -> AsyncIterator[Sink]:
    async with sink_client(SinkSettings()) as client:
        yield client


@pytest.fixture
async def sink(runbooks_dir: Path) -> AsyncIterator[Sink]:
    async with sink_client(SinkSettings(runbooks_dir=runbooks_dir)) as client:
        yield client


async def test_runbook_page_renders_the_repository_markdown_as_html(
    repository_sink: Sink,
) -> None:
    response = await repository_sink.get("/runbooks/HighErrorRate")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>HighErrorRate runbook</title>" in response.text
    assert "<h1>HighErrorRate</h1>" in response.text
    assert "<h2>What it means</h2>" in response.text
    assert "<strong>Severity</strong>" in response.text
    assert "<pre><code>make scenario NAME=HighErrorRate\n</code></pre>" in response.text


async def test_runbook_page_links_back_relative_to_itself(sink: Sink) -> None:
    response = await sink.get("/runbooks/HighErrorRate")

    assert '<a href="../">Alert sink</a>' in response.text
    assert '<a href="../runbooks">All runbooks</a>' in response.text


async def test_runbook_index_links_every_repository_runbook(repository_sink: Sink) -> None:
    response = await repository_sink.get("/runbooks")

    assert response.status_code == 200
    assert re.findall(r'<li><a href="runbooks/(\w+)">\1</a></li>', response.text) == (
        REPOSITORY_RUNBOOKS
    )


async def test_runbook_index_with_a_trailing_slash_redirects_to_the_index(sink: Sink) -> None:
    response = await sink.get("/runbooks/")

    assert response.status_code == 307
    assert response.headers["location"] == "../runbooks"


async def test_runbook_with_a_trailing_slash_redirects_to_the_runbook(sink: Sink) -> None:
    response = await sink.get("/runbooks/HighErrorRate/")

    assert response.status_code == 307
    assert response.headers["location"] == "../HighErrorRate"


async def test_runbook_index_lists_only_markdown_files_named_like_alerts(sink: Sink) -> None:
    response = await sink.get("/runbooks")

    assert '<ul><li><a href="runbooks/HighErrorRate">HighErrorRate</a></li></ul>' in response.text
    assert "not-an-alert" not in response.text
    assert "notes" not in response.text


async def test_runbook_index_of_an_empty_folder_names_the_variable(tmp_path: Path) -> None:
    async with sink_client(SinkSettings(runbooks_dir=tmp_path)) as client:
        response = await client.get("/runbooks")

    assert response.status_code == 200
    assert "No runbook found in" in response.text
    assert "ALERT_SINK_RUNBOOKS_DIR" in response.text


@pytest.mark.parametrize("name", ["ToolFailureSpike", "higherrorrate", "HIGHERRORRATE"])
async def test_unknown_runbook_gets_a_json_404_listing_the_runbooks(sink: Sink, name: str) -> None:
    response = await sink.get(f"/runbooks/{name}")

    assert response.status_code == 404
    assert response.json() == {
        "error": "runbook_not_found",
        "message": f"no runbook named {name!r}; the runbooks are: HighErrorRate",
    }


@pytest.mark.parametrize("path", [
    "/runbooks/HighErrorRate.md",
    "/runbooks/not-an-alert",
    "/runbooks/%2e%2e",
    "/runbooks/.%2E",
    "/runbooks/secret%2Emd",
    "/runbooks/High%00ErrorRate",
    "/runbooks/High%20ErrorRate",
    "/runbooks/" + "A" * 65,
    # Paths trying to leave the runbooks folder get the same answer, and never the file.
    "/runbooks/..%2Fsecret.md",
    "/runbooks/..%2F..%2Fetc%2Fpasswd",
    "/runbooks/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/runbooks/..%2Fpasswd",
    "/runbooks/..%5Csecret.md",
    "/runbooks/%2Fetc%2Fpasswd",
])
async def test_runbook_name_that_is_not_letters_only_gets_a_json_404_without_any_file(
    sink: Sink, path: str
) -> None:
    response = await sink.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "runbook_not_found"
    assert "runbook names are letters only" in response.json()["message"]
    assert SECRET not in response.text


async def test_page_links_an_alert_to_its_runbook_relative_to_the_page(sink: Sink) -> None:
    await sink.post("/webhook", json=firing_payload(alertname="HighErrorRate"))

    page = (await sink.get("/")).text

    assert '<td><a href="runbooks/HighErrorRate">HighErrorRate</a></td>' in page


async def test_page_leaves_an_alert_without_runbook_unlinked(sink: Sink) -> None:
    await sink.post("/webhook", json=firing_payload(alertname="HighLatency"))

    page = (await sink.get("/")).text

    assert "<td>HighLatency</td>" in page
    assert 'href="runbooks/HighLatency"' not in page


def test_runbooks_dir_defaults_to_the_repository_docs() -> None:
    settings = load_settings({})

    assert settings.runbooks_dir == REPO_ROOT / "docs" / "runbooks"


def test_runbooks_dir_comes_from_the_environment(runbooks_dir: Path) -> None:
    settings = load_settings({"ALERT_SINK_RUNBOOKS_DIR": str(runbooks_dir)})

    assert settings.runbooks_dir == runbooks_dir


def test_runbooks_dir_that_is_not_a_directory_is_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(SettingsError, match=f"ALERT_SINK_RUNBOOKS_DIR='{missing}'"):
        load_settings({"ALERT_SINK_RUNBOOKS_DIR": str(missing)})

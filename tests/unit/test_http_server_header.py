"""The admin (metrics) listener names no HTTP library or Python version either (http/app.py
SERVER_HEADER); the public listener's answers are checked live in
tests/integration/test_token_endpoint.py."""

from aiohttp.test_utils import TestClient, TestServer
from sekisho.http.app import SERVER_HEADER, create_metrics_app


async def test_the_metrics_listener_answers_as_sekisho_only() -> None:
    app = create_metrics_app(lambda: (b"# nothing\n", "text/plain; version=0.0.4"))
    async with TestClient(TestServer(app)) as client:
        for path in ("/metrics", "/elsewhere"):
            response = await client.get(path)
            assert response.headers.getall("Server") == [SERVER_HEADER] == ["sekisho"], path

"""An in-memory JsonFetcher: documents by URL, call counting, switchable failures."""

from typing import Any

from sekisho.verify.fetcher import FetchError


class FakeFetcher:
    def __init__(self, documents: dict[str, Any] | None = None) -> None:
        self.documents: dict[str, Any] = dict(documents or {})
        self.calls: list[str] = []
        self.failing = False

    async def fetch_json(self, url: str) -> Any:
        self.calls.append(url)
        if self.failing or url not in self.documents:
            raise FetchError(f"GET {url} failed")
        return self.documents[url]

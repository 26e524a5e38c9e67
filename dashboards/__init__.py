"""Compliance queries, exports, the HTML report and the web dashboard."""

__all__: list[str] = []

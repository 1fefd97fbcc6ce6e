"""A report as a list of plain blocks, so Markdown and HTML say exactly the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Heading", "Paragraph", "Bullets", "Table", "Image", "Document", "Block"]


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Plain text; ``**bold**`` and ``code`` spans in backquotes are rendered by both writers."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    """A PNG beside the report: Markdown links ``file``, HTML inlines it as base64."""

    file: str  # relative to the report's folder
    caption: str
    path: Path | None = None  # where to read the bytes from (default: folder / file)
    png: bytes | None = None  # the bytes themselves, for reports that write no PNG files


Block = Heading | Paragraph | Bullets | Table | Image


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Document:
        self.blocks.extend(blocks)
        return self

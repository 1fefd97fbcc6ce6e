"""Reports: a Document of plain blocks, rendered as self-contained HTML and as Markdown."""

from .build import CLASSIC_INTRO, FigureRef, build_document
from .document import Bullets, Document, Heading, Image, Paragraph, Table
from .explain import NOTEBOOK_CLAIMS, measured_sentences, notebook_comparison, table_row
from .html import render_html
from .markdown import render_markdown

__all__ = [
    "Document", "Heading", "Paragraph", "Bullets", "Table", "Image", "FigureRef",
    "build_document", "render_html", "render_markdown", "CLASSIC_INTRO",
    "NOTEBOOK_CLAIMS", "measured_sentences", "notebook_comparison", "table_row",
]

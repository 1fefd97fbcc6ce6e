"""The version, written once: hatch reads it for the package metadata (``[tool.hatch.version]``)."""

__version__ = "0.1.0"

"""The command line: thin layer over the library (parse, call, print, exit codes)."""

from .main import app, main

__all__ = ["app", "main"]

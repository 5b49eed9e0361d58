"""vibetwist: terminals shared with any browser, served by Twisted."""

__version__ = "0.1.0"

__all__ = ["__version__"]

"""robochem: a self-driving photochemistry lab that a lab can trust."""

from robochem._version import __version__

__all__ = ["__version__"]

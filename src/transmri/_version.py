"""The installed version of transmri."""

__version__ = "0.1.0"

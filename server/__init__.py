"""Bootfleet: network boot and one-shot client reinstallation."""

__version__ = "0.1.0"

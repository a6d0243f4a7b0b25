"""callhook: a call event hub for IP phones and PBXs."""

__version__ = "0.1.0"

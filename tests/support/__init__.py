"""Test support: a real hub process, phones on raw sockets, recording sinks."""

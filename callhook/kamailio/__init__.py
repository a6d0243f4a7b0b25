"""Kamailio as a source: the configuration it runs, and the hub's side of its reports."""

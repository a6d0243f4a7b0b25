"""WebSocket pub/sub in the PortSIP WSI protocol (seeds/002, SPEC §4.1)."""

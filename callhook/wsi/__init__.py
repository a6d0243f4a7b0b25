"""WebSocket pub/sub in the PortSIP WSI protocol (docs/wsi.md)."""

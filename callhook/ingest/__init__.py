"""Phone ingest: Action URL request shapes -> PhoneEvent."""

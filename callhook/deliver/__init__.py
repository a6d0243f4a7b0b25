"""Outbound delivery: VoipNow-style Call Events and signed JSON webhooks, at-least-once.

Flow: the event log's in-transaction hook writes one outbox row per (endpoint, event) in the
same transaction as the event (outbox.py); after commit the rows reach per-endpoint queues
(worker.py), which send them over one lean keep-alive HTTP/1.1 client (sender.py,
http1.py) and record every attempt in batches through the single writer (recorder.py).
Pure parts: backoff.py, signing.py, call_events.py, payload.py, rules.py. The outbox
remembers each call's parties (parties.py) for the Call Events requests of events that do
not say them. In a cluster the queues get only what this node claimed in PostgreSQL
(claims.py), so any node sends what any node committed, each delivery once.
"""

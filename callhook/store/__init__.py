"""Storage: the event log and everything else callhook keeps."""

"""Reports: usage per centre and month (the CDR report) and what the network dashboard
reads. Read-only; uses the ground floor only."""

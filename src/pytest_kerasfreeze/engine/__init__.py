"""Weights only, no pytest and no running test: selection, snapshots and their diff,
verdicts, attribution, diagnosis, findings, the plan of the next fit(), provenance and
the words of every message (messages/)."""

"""Delivery to Segment, shared by every pipeline: what a run is handed, and sending its messages."""

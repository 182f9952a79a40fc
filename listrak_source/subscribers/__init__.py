"""The subscriber pipeline: Listrak subscribers to Segment identify calls, one list a run."""

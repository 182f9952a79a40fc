"""The activity pipeline: each open message's rows re-read, diffed, and sent as track events."""

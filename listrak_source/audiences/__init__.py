"""The audience pipeline: the receiver Segment posts to, and the push to Listrak profile fields."""

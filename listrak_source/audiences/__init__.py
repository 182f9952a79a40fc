"""Engage audiences into Listrak profile fields: the rules, and the receiver Segment posts to."""

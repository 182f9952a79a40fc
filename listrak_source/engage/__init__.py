"""Segment Engage audience events as the worker reads them: membership, mapping, ranking, read-back.

Pure rules and records; the state layer and the audience pipeline both build on them.
"""

"""Email activity's pure rules: Listrak's cumulative rows become once-only `track` facts."""

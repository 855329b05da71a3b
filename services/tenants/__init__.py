"""The operator commands that take a tenant's data out of salesloop: `salesloop tenants export` and
`salesloop tenants delete` (the work is services/core/offboarding.py's and offboarding_export.py's)."""

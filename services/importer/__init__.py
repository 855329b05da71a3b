"""`salesloop import`: a CRM's history from its own exports, as the BuyerEvents its webhooks would send.

An operator command beside `rebuild` (SPEC 6), not a service: it reads the files (`csvfile.py`,
`sources.py`), maps each export's rows (`hubspot.py`, `salesforce.py`, `activities.py`; cell values
in `values.py`, owners in `owners.py`), checks every event with the wire format's decoder, leaves out
what the tenant already has (`known.py`) and produces the rest to the events topic (`send.py`);
`run.py` is the order of those steps, `command.py` and `summary.py` what the operator sees.
It imports none of the services (tests/test_architecture.py).
"""

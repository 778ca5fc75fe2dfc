"""Reports: read-only queries over a tenant's master data, shared by the admin API
(``/admin/v1/reports/...``) and the console, so that both show the same numbers.

Layer: below HTTP and the console, beside the write service; reports read through
``storage`` (its models and its one definition of each derived value, ``storage.derived``
and ``storage.hierarchy``) and never write.
"""

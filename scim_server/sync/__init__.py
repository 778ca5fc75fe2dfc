"""Sync from HR, payroll and member registers (issue 13).

``mapping`` says how a customer's file is laid out, ``readers`` streams a CSV or XLSX
file into rows keyed by our column names, and ``records`` turns those rows into
validated people and org units. None of them touches a database or a request: the
diff and apply steps build on their records.
"""

"""Tables, plots and the report page: the last phase, built only from result records and the paper's numbers.

Order of work (each step reads only what the previous one wrote):
``tables.build_tables`` (records + ``results/reference/*.csv`` → validated tidy CSVs) →
``plots.make_plots`` (CSVs → PNGs) → ``page.write_report`` (CSVs, PNGs, record provenance →
``results/report.md`` + ``results/metrics.json``). ``trace.trace`` walks a table cell back to its record.
"""

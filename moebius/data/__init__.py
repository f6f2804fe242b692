"""Datasets: registry (sources, checksums, splits, counts), download / extract, smoke data, benchmarks.

Modules, one concept each: ``errors`` (exception types), ``checksums`` (hashing, our ledger),
``download`` (resumable verified download, safe extraction), ``preprocess`` (decode, MAT / MI-GAN /
LaMa geometry), ``selection`` (deterministic id choice), ``manifest`` (manifest.csv, data version),
``registry`` (datasets, benchmarks, full-scale fetch), ``smoke`` (local smoke datasets),
``benchmarks`` (benchmark image folders).
"""

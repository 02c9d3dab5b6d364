"""The SLO core: specs, exact error-budget maths and Prometheus rule generation.

Pure: no I/O, no web, database, cache or HTTP client imports (an import-linter contract checks
it). Modules: ``spec`` (models and loaders), ``maths`` (SLI, budget, burn rates, windows),
``queries`` (PromQL and Elasticsearch query text), ``rules`` (rule files), ``promql``
(series selectors) and ``durations``. See ``slo/README.md``.
"""

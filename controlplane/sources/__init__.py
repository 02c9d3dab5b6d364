"""Signal sources: Prometheus, Elasticsearch and Jaeger behind the Protocols of ``base``.

One module per backend (``prometheus``, ``elasticsearch``, ``jaeger``), each with a
``from_settings`` constructor; callers depend on the Protocols (``MetricsSource``, ``LogSource``,
``TraceSource``). The package imports no backend module itself, so a command that needs one
source does not pay for the others' clients.
"""

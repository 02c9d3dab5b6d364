"""SLO evaluation: the evaluator (one cycle), the scheduler service and the self-metrics."""

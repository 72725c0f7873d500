"""The proxy's statistics at StatisticsURL: the report, as HTML, JSON and Prometheus text."""

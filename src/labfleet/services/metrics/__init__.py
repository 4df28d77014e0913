"""What ``/metrics`` tells Prometheus, read from the database at each scrape."""

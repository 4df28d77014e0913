"""Pipelines: build -> deploy -> boot -> test as durable rows, their stage order and logs."""

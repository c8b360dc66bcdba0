"""Workload models that produce schedules: Azure Functions trace to load (proxy mapping,
arrivals inside each unit, sampling), proxy deployment, and coverage plots."""

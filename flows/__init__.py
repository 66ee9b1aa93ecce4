"""Prefect flows of inrflow and the `inr` command line. Orchestration only: no tensor math."""

"""Prefect blocks of Cronium (SSH servers, variables), registered through the
`prefect.collections` entry point; notification blocks are Prefect's own."""

"""Trigger a metadata DAG run on MWAA from a CloudFormation custom resource and wait for it.

- ``plan``: pure decisions (properties, run ids, what an event asks for, messages).
- ``airflow_api``: the thin client over MWAA InvokeRestApi (CLI-token fallback).
- ``handler``: ``on_event`` / ``is_complete`` for ``custom_resources.Provider``.
"""

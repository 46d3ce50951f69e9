"""Development and test harness, not user-facing: a private PostgreSQL (``pgcluster``), one
Airflow venv per version (``airflow_envs``) and a generated Airflow history (``seed``).

``pgcluster`` and ``airflow_envs`` are also scripts (``python tools/dev/pgcluster.py stop``);
``seed`` runs inside an Airflow venv (``python tools/dev/seed.py --rows N``)."""

"""Airflow metadata migration between MWAA environments (library of db_export / db_import).

Only what MWAA images ship is imported here: the standard library, Airflow, SQLAlchemy,
psycopg2, boto3 and cryptography. Pure planning lives in ``rules`` and ``plan``; the
database, S3 and CloudWatch I/O is kept thin in ``dbio`` and ``s3io``.
"""

MIGRATION_DAG_IDS = ("db_export", "db_import")

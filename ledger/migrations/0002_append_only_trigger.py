"""Make the log append-only in PostgreSQL itself: UPDATE and DELETE of records raise.

TRUNCATE is left alone (the test suite's flush uses it; an operator who truncates the log
has already decided to destroy it). SQLite has no such guard; the ORM refuses there.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION ledger_logrecord_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the log is append-only: % of ledger_logrecord refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_logrecord_append_only
    BEFORE UPDATE OR DELETE ON ledger_logrecord
    FOR EACH ROW EXECUTE FUNCTION ledger_logrecord_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS ledger_logrecord_append_only ON ledger_logrecord;
DROP FUNCTION IF EXISTS ledger_logrecord_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]

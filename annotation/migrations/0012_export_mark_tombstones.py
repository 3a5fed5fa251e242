# A deleted item keeps its export mark, and the delete is recorded as pending: the next
# marking turns the mark into a tombstone that a pull carries as a retraction
# (annotation.exports.marks._tombstones_write). Every deleted item is recorded, marked or
# not: a pull marking it for the first time may not have committed its mark yet (the
# marking then finds no mark and drops the row).

import django.db.models.deletion
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models

POSTGRESQL_CREATE = (
    """
    CREATE FUNCTION annotation_item_export_gone() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO annotation_exportpending (item_id, project_id, version)
        VALUES (OLD.id, OLD.project_id, OLD.label_version + 1)
        ON CONFLICT (item_id) DO UPDATE SET version = EXCLUDED.version;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER item_export_gone AFTER DELETE ON annotation_item
    FOR EACH ROW EXECUTE FUNCTION annotation_item_export_gone()
    """,
)
POSTGRESQL_DROP = (
    "DROP TRIGGER IF EXISTS item_export_gone ON annotation_item",
    "DROP FUNCTION IF EXISTS annotation_item_export_gone()",
)
SQLITE_CREATE = (
    """
    CREATE TRIGGER item_export_gone AFTER DELETE ON annotation_item
    FOR EACH ROW
    BEGIN
        INSERT INTO annotation_exportpending (item_id, project_id, version)
        VALUES (OLD.id, OLD.project_id, OLD.label_version + 1)
        ON CONFLICT (item_id) DO UPDATE SET version = excluded.version;
    END
    """,
)
SQLITE_DROP = ("DROP TRIGGER IF EXISTS item_export_gone",)


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise ImproperlyConfigured(
                f"Parity runs on PostgreSQL or SQLite, not {schema_editor.connection.vendor}"
            )
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0011_project_export_handed"),
    ]

    operations = [
        migrations.AlterField(
            model_name="exportmark",
            name="item",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="export_mark",
                to="annotation.item",
            ),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL_CREATE, "sqlite": SQLITE_CREATE}),
            reverse_code=_run({"postgresql": POSTGRESQL_DROP, "sqlite": SQLITE_DROP}),
        ),
    ]

# The export's pending set moves from a column of the items (exported_version, updated for
# every marked item: a rewrite of wide rows and all their indexes) to a narrow table that a
# trigger fills whenever an item's label_version moves.

import django.db.models.deletion
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models

# Every move of an item's label_version records the item as pending for the export. The
# upsert (not DO NOTHING) takes the pending row's lock until the writer commits, so the
# export's marking, which deletes what it takes, waits for a writer still in flight.
POSTGRESQL_CREATE = (
    """
    CREATE FUNCTION annotation_item_export_pending() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO annotation_exportpending (item_id, project_id, version)
        VALUES (NEW.id, NEW.project_id, NEW.label_version)
        ON CONFLICT (item_id) DO UPDATE SET version = EXCLUDED.version;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER item_export_pending AFTER UPDATE OF label_version ON annotation_item
    FOR EACH ROW WHEN (NEW.label_version IS DISTINCT FROM OLD.label_version)
    EXECUTE FUNCTION annotation_item_export_pending()
    """,
)
POSTGRESQL_DROP = (
    "DROP TRIGGER IF EXISTS item_export_pending ON annotation_item",
    "DROP FUNCTION IF EXISTS annotation_item_export_pending()",
)
SQLITE_CREATE = (
    """
    CREATE TRIGGER item_export_pending AFTER UPDATE OF label_version ON annotation_item
    FOR EACH ROW WHEN NEW.label_version <> OLD.label_version
    BEGIN
        INSERT INTO annotation_exportpending (item_id, project_id, version)
        VALUES (NEW.id, NEW.project_id, NEW.label_version)
        ON CONFLICT (item_id) DO UPDATE SET version = excluded.version;
    END
    """,
)
SQLITE_DROP = ("DROP TRIGGER IF EXISTS item_export_pending",)


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            # The trigger is what keeps incremental pulls complete: no database, no migration.
            raise ImproperlyConfigured(
                f"Parity runs on PostgreSQL or SQLite, not {schema_editor.connection.vendor}"
            )
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0007_export_pending"),
    ]

    operations = [
        migrations.CreateModel(
            name="ExportPending",
            fields=[
                (
                    "item",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="annotation.item",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.project",
                    ),
                ),
                ("version", models.PositiveIntegerField(default=0)),
            ],
        ),
        # What the column said was pending stays pending.
        migrations.RunSQL(
            sql=(
                "INSERT INTO annotation_exportpending (item_id, project_id, version) "
                "SELECT id, project_id, label_version FROM annotation_item "
                "WHERE label_version > exported_version"
            ),
            reverse_sql=(
                "UPDATE annotation_item SET exported_version = label_version WHERE id NOT IN "
                "(SELECT item_id FROM annotation_exportpending)"
            ),
        ),
        migrations.RemoveIndex(
            model_name="item",
            name="item_export_pending",
        ),
        migrations.RemoveField(
            model_name="item",
            name="exported_version",
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL_CREATE, "sqlite": SQLITE_CREATE}),
            reverse_code=_run({"postgresql": POSTGRESQL_DROP, "sqlite": SQLITE_DROP}),
        ),
    ]

# Each export mark keeps what decides its item's line as read when it was marked (status,
# gold flag, votes, final label, and the item's key, language and prompt): a pull reads the
# narrow marks instead of the item row, its judgments and its final label. The existing
# marks are filled from their items as they are now; an item whose label moved since its
# mark is still pending and is marked again by the next pull.

import django.db.models.deletion
from django.db import migrations, models

_KINDS = "('production', 'historical')"  # the counted judgment kinds
_KEY = "CASE p.task_type WHEN 'rating' THEN 'score' ELSE 'choice' END"

POSTGRESQL_FILL = f"""
UPDATE annotation_exportmark m SET
    external_id = i.external_id, language_id = i.language_id, prompt_id = i.prompt_id,
    status = i.status, is_gold = i.is_gold, final = f.value, votes = v.votes, version = v.version
FROM annotation_item i
JOIN annotation_project p ON p.id = i.project_id
LEFT JOIN annotation_finallabel f ON f.item_id = i.id
LEFT JOIN LATERAL (
    SELECT string_agg(coalesce(j.value ->> ({_KEY}), '') || ':'
                      || coalesce(j.value ->> 'strength', ''), ',') AS votes,
           substr(max(lpad(j.id::text, 19, '0') || j.guideline_version), 20) AS version
    FROM annotation_judgment j
    WHERE j.item_id = i.id AND j.is_current AND j.kind IN {_KINDS}
) v ON true
WHERE i.id = m.item_id
"""

SQLITE_FILL = f"""
UPDATE annotation_exportmark SET
    external_id = i.external_id, language_id = i.language_id, prompt_id = i.prompt_id,
    status = i.status, is_gold = i.is_gold,
    final = (SELECT f.value FROM annotation_finallabel f WHERE f.item_id = i.id),
    votes = (
        SELECT group_concat(coalesce(json_extract(j.value, '$.' || ({_KEY})), '') || ':'
                            || coalesce(json_extract(j.value, '$.strength'), ''), ',')
        FROM annotation_judgment j
        WHERE j.item_id = i.id AND j.is_current AND j.kind IN {_KINDS}
    ),
    version = (
        SELECT substr(max(printf('%019d', j.id) || j.guideline_version), 20)
        FROM annotation_judgment j
        WHERE j.item_id = i.id AND j.is_current AND j.kind IN {_KINDS}
    )
FROM annotation_item i JOIN annotation_project p ON p.id = i.project_id
WHERE i.id = annotation_exportmark.item_id
"""


def _fill(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    # Migration 0008 already refuses any other database.
    schema_editor.execute(POSTGRESQL_FILL if vendor == "postgresql" else SQLITE_FILL)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0008_export_pending_table"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportmark",
            name="external_id",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="final",
            field=models.JSONField(null=True),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="is_gold",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="language",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="annotation.language",
            ),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="prompt_id",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="status",
            field=models.CharField(blank=True, max_length=12),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="version",
            field=models.CharField(max_length=40, null=True),
        ),
        migrations.AddField(
            model_name="exportmark",
            name="votes",
            field=models.TextField(null=True),
        ),
        migrations.RunPython(_fill, reverse_code=migrations.RunPython.noop),
    ]

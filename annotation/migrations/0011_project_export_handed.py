from django.db import migrations, models
from django.db.models import Max


def _handed_so_far(apps, schema_editor):
    """Before this migration any mark closed the undo window, whoever made it: each
    project's latest mark counts as handed out, so undo stays refused exactly where it was."""
    ExportMark = apps.get_model("annotation", "ExportMark")
    Project = apps.get_model("annotation", "Project")
    latest = ExportMark.objects.order_by().values("project_id").annotate(m=Max("id"))
    for row in latest.iterator():
        Project.objects.filter(pk=row["project_id"]).update(export_handed=row["m"])


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0010_assignment_index_submitted_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="export_handed",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(_handed_so_far, migrations.RunPython.noop, elidable=True),
    ]

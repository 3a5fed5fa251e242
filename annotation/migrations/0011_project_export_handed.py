from django.db import migrations, models
from django.db.models import Exists, OuterRef
from django.utils import timezone


def _handed_so_far(apps, schema_editor):
    """Before this migration any mark closed the undo window, whoever made it: a project
    with marks counts as handed out now, so undo stays refused where it was."""
    ExportMark = apps.get_model("annotation", "ExportMark")
    Project = apps.get_model("annotation", "Project")
    Project.objects.filter(Exists(ExportMark.objects.filter(project_id=OuterRef("pk")))).update(
        export_handed_at=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0010_assignment_index_submitted_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="export_handed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(_handed_so_far, migrations.RunPython.noop, elidable=True),
    ]

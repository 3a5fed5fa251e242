"""The model registry: one ModelVersion per model name a project's items carry, filled
from the items already imported (undated; the lead adds release dates)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def _register_existing(apps, schema_editor):
    Item = apps.get_model("annotation", "Item")
    ModelVersion = apps.get_model("annotation", "ModelVersion")
    names = set()
    for field in ("model", "model_a", "model_b"):
        names.update(
            Item.objects.exclude(**{field: ""}).values_list("project_id", field).distinct().iterator()
        )
    ModelVersion.objects.bulk_create(
        [ModelVersion(project_id=project_id, name=name) for project_id, name in sorted(names)],
        batch_size=1000, ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0003_export_label_versions'),
    ]

    operations = [
        migrations.CreateModel(
            name='ModelVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200, verbose_name='name')),
                ('version', models.CharField(blank=True, max_length=100, verbose_name='version')),
                ('released_on', models.DateField(blank=True, null=True, verbose_name='release date')),
                ('notes', models.TextField(blank=True, verbose_name='notes')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='model_versions', to='annotation.project')),
            ],
            options={
                'ordering': ['project', models.OrderBy(models.F('released_on'), nulls_last=True), 'name'],
                'constraints': [models.UniqueConstraint(fields=('project', 'name'), name='model_version_unique_name'), models.CheckConstraint(condition=models.Q(('name', ''), _negated=True), name='model_version_name_not_empty')],
            },
        ),
        migrations.RunPython(_register_existing, migrations.RunPython.noop),
    ]

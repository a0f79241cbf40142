# IPS (Suricata): the clusters' SSH channels, their nodes (pinned host keys, EVE read positions), alerts.

import apps.core.fields
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('firewall', '0001_initial'),
        ('guests', '0004_guest_tenant'),
        ('nodes', '0003_node_bridges'),
    ]

    operations = [
        migrations.CreateModel(
            name='SshChannel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('enabled', models.BooleanField(default=True)),
                ('username', models.CharField(default='root', max_length=32)),
                ('port', models.PositiveIntegerField(default=22, help_text='nodes without a port of their own')),
                ('private_key', apps.core.fields.EncryptedTextField()),
                ('public_key', models.TextField()),
                ('key_fingerprint', models.CharField(max_length=64)),
                ('trust_on_first_use', models.BooleanField(default=True, help_text='pin the host key a node presents the first time (otherwise: pin each one first)')),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('key_created', models.DateTimeField(blank=True, null=True)),
                ('last_ok_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('cluster', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='ssh_channel', to='nodes.cluster')),
            ],
        ),
        migrations.CreateModel(
            name='IpsAlert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('node', models.CharField(max_length=100)),
                ('timestamp', models.DateTimeField()),
                ('received', models.DateTimeField(auto_now_add=True)),
                ('signature', models.CharField(max_length=512)),
                ('signature_id', models.BigIntegerField(blank=True, null=True)),
                ('category', models.CharField(blank=True, max_length=256)),
                ('severity', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('action', models.CharField(blank=True, max_length=16)),
                ('proto', models.CharField(blank=True, max_length=16)),
                ('src_ip', models.CharField(blank=True, max_length=64)),
                ('src_port', models.PositiveIntegerField(blank=True, null=True)),
                ('dest_ip', models.CharField(blank=True, max_length=64)),
                ('dest_port', models.PositiveIntegerField(blank=True, null=True)),
                ('direction', models.CharField(blank=True, max_length=3)),
                ('matched_by', models.CharField(blank=True, max_length=8)),
                ('flow_id', models.BigIntegerField(blank=True, null=True)),
                ('line_hash', models.CharField(max_length=64)),
                ('cluster', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ips_alerts', to='nodes.cluster')),
                ('guest', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='ips_alerts', to='guests.guest')),
            ],
            options={
                'ordering': ('-timestamp', '-id'),
                'indexes': [models.Index(fields=['guest', '-timestamp'], name='firewall_ip_guest_i_0d175a_idx'), models.Index(fields=['cluster', '-timestamp'], name='firewall_ip_cluster_5cf4ba_idx')],
                'constraints': [models.UniqueConstraint(fields=('cluster', 'node', 'line_hash'), name='firewall_ipsalert_once')],
            },
        ),
        migrations.CreateModel(
            name='NodeHost',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('node', models.CharField(max_length=100)),
                ('address', models.CharField(blank=True, help_text="empty: the node's address in Proxmox", max_length=255)),
                ('port', models.PositiveIntegerField(blank=True, null=True)),
                ('host_key', models.TextField(blank=True)),
                ('pinned_how', models.CharField(blank=True, choices=[('tofu', 'first use'), ('pasted', 'pasted by an operator'), ('scanned', 'read and confirmed by an operator')], max_length=8)),
                ('pinned_at', models.DateTimeField(blank=True, null=True)),
                ('eve_offset', models.BigIntegerField(default=0)),
                ('eve_head', models.CharField(blank=True, max_length=64)),
                ('eve_read_at', models.DateTimeField(blank=True, null=True)),
                ('eve_error', models.TextField(blank=True)),
                ('channel', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='hosts', to='firewall.sshchannel')),
            ],
            options={
                'ordering': ('channel', 'node'),
                'constraints': [models.UniqueConstraint(fields=('channel', 'node'), name='firewall_nodehost_once')],
            },
        ),
    ]
